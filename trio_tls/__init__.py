"""trio-tls: a TLS 1.2 server whose protocol is written in Python, on trio."""
