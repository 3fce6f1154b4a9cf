// @membrane/bpf-loader-napi: Native eBPF loader for Node.js: an N-API addon over the system libbpf with a typed API.
export {}
