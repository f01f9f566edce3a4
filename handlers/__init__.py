"""Built-in trio-tls handler plugins, registered through the `trio_tls.handlers` entry points."""
