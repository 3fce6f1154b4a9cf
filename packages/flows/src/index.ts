// @membrane/flows: Hubble-compatible flows from datapath events: Observer gRPC API, observe CLI, Prometheus metrics.
export {}
