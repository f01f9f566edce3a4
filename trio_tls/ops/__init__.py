"""Running the server: files, processes, signals.

settings      the command line's settings, turned into a ServerConfig
reload        SIGHUP: reload the certificates and keys
certs         certificate and key files, the development certificate
secretfiles   creating and reading private files safely
ticketfile    session-ticket keys shared through a file
keylog        SSLKEYLOGFILE
shutdown      signals and graceful shutdown
workers       several processes on one listening socket
systemd       sd_notify and socket activation
pidfile       --pid-file
privileges    --user/--group: dropping root
plugins       handlers: the contract and entry-point discovery
"""
