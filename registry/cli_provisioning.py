"""``towerbox registry provisioning create|list|revoke``, ``site-identity`` and
``site-rebind``: zero-touch enrollment and node replacement from the registry's host.

Like the other administration commands they open the registry database directly and
apply the same checks as the API (docs/enrollment.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import msgspec

from towerbox_core.commands import table

if TYPE_CHECKING:
    from registry.context import Registry


def register(cmds: Any) -> list[argparse.ArgumentParser]:
    """The commands' parsers; those answered as JSON with --json."""
    prov = cmds.add_parser("provisioning", help="credentials new nodes enroll themselves with")
    sub = prov.add_subparsers(dest="provisioning_command", required=True)
    create = sub.add_parser("create", help="a new credential; prints its token once")
    create.add_argument("name")
    create.add_argument(
        "--label", action="append", default=[], help="key=value of the sites it creates"
    )
    create.add_argument("--region", default="", help="region of the sites it creates")
    create.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="HARDWARE_ID[=SITE]",
        help="an identity it may create a site for (site name optional), repeatable",
    )
    create.add_argument("--expires-in", type=int, help="lifetime in seconds (default: none)")
    listing = sub.add_parser("list", help="the credentials (never their tokens)")
    revoke = sub.add_parser("revoke", help="revoke a credential: nodes can no longer use it")
    revoke.add_argument("id", type=int)
    identity = cmds.add_parser(
        "site-identity", help="list the hardware identity of a site's (next) node"
    )
    identity.add_argument("name")
    identity.add_argument("hardware_id")
    identity.add_argument(
        "--replacement",
        action="store_true",
        help="the identity replaces the site's node: a new journal epoch when it enrolls",
    )
    rebind = cmds.add_parser(
        "site-rebind", help="re-bind a site to a new node: a new journal epoch, a new token"
    )
    rebind.add_argument("name")
    rebind.add_argument("--hardware-id", help="the new node's identity, for zero-touch")
    rebind.add_argument("--ttl", type=int, help="the enrollment token's lifetime in seconds")
    return [create, listing, identity, rebind]


def run(args: argparse.Namespace, registry: Registry) -> Any:
    service = registry.provisioning
    if args.registry_command == "site-identity":
        return service.set_identity(args.name, args.hardware_id, args.replacement)
    if args.registry_command == "site-rebind":
        done = service.rebind(args.name, args.hardware_id, args.ttl)
        _warn_once("enrollment token")
        return done
    if args.provisioning_command == "create":
        made = service.credentials.create(_credential_request(args), "cli")
        _warn_once("provisioning credential")
        return made if args.json else f"{made.token}\n"
    if args.provisioning_command == "list":
        found = service.credentials.list()
        if args.json:
            return found
        rows = [
            {**msgspec.to_builtins(c), "allow": len(c.allow), "labels": _labels(c.labels)}
            for c in found.credentials
        ]
        columns = ("id", "name", "labels", "region", "allow", "uses", "expires_at", "revoked_at")
        return table(rows, columns) + "\n"
    service.credentials.revoke(args.id)
    return f"revoked provisioning credential {args.id}\n"


def _credential_request(args: argparse.Namespace) -> Any:
    from towerbox_core.api.provisioning import AllowedIdentity, ProvisioningCredentialCreate
    from towerbox_core.names import parse_label

    allow: list[str | AllowedIdentity] = []
    for text in args.allow:
        hardware_id, _, site = text.partition("=")
        allow.append(AllowedIdentity(hardware_id, site or None))
    return ProvisioningCredentialCreate(
        name=args.name,
        labels=dict(parse_label(text) for text in args.label),
        region=args.region,
        allow=allow,
        expires_in_s=args.expires_in,
    )


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items()) or "-"


def _warn_once(what: str) -> None:
    sys.stderr.write(
        f"the {what} is shown this once; the registry keeps only its hash. Store it now.\n"
    )
