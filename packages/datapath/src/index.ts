// @membrane/datapath: The Membrane eBPF datapath: map layouts mirroring bpf-src, loading and attaching the programs.
export {}
