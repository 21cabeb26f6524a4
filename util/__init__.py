"""Small shared helpers: registry, errors, checkpoints, logging/visualisation, HTML pages."""
