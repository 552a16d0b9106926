package nfsd

// DefaultRpcbindSocket is where FreeBSD's rpcbind listens on an AF_LOCAL
// stream socket (_PATH_RPCBINDSOCK).
const DefaultRpcbindSocket = "/var/run/rpcbind.sock"
