"""The appliance catalog: one TOML file per VM appliance (images/catalog/*.toml).

``model`` holds the typed entry and the VM spec an entry makes, ``loading`` decodes
and checks the files (and the registry's documents, checked the same way),
``images`` says whether an entry's image files are on the node, and ``cloud_init``
renders an entry's cloud-init user-data. The schema is documented in images/README.md.
"""
