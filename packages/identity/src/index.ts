// @membrane/identity: Labels to security identities: reserved identities, in-memory and etcd allocators, ipcache.
export {}
