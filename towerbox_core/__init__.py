"""What every Towerbox program shares, and nothing else.

Errors and their codes, the layered config reader, logging, the subprocess door,
sd_notify, secret files, one name grammar, one account system, the problem-details
handlers, the sync wire contract, the API's typed structs and one HTTP client. This
package imports nothing else of Towerbox's: appliance, upf_bridge, registry,
edge_agent and ui import it, never each other (the appliance also uses upf_bridge).
"""

__version__ = "0.1.0"
