"""The AWS layer: account sessions and clients, error classification, DynamoDB batch calls, the key codec.

Import from the submodules (``migrator.aws.session`` …); this package imports nothing itself, so
reaching one piece never builds a session or touches the network.
"""
