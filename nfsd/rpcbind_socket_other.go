//go:build !freebsd

package nfsd

// DefaultRpcbindSocket is where Linux rpcbind listens on an AF_LOCAL stream
// socket.
const DefaultRpcbindSocket = "/run/rpcbind.sock"
