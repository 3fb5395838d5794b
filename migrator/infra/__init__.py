"""Infrastructure: the typed Terraform runner and plan analysis, tfvars rendering, the state backend, the
bundled engine fallback, and the replicator's Lambda zip."""
