"""The trio runtime.

stream           TLSStream: the engine on a trio stream
listen           serve(): listeners, the accept loop, one connection's life
connection_log   the one-line outcome of each connection
addresses        the addresses of the connection being served
deadlines        idle and whole-stream deadlines
proxy_protocol   PROXY protocol v1/v2 headers
peerlimit        --max-connections-per-ip: connections per client address
"""
