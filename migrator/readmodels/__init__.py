"""Read models: where a migration stands (:mod:`.status`) and whether it may cut over (:mod:`.cutover`).

They read the accounts and the state and return data (:mod:`.views`); only the CLI renders it.
"""
