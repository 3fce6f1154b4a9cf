// @membrane/l7proxy: Transparent L7 policy enforcement for HTTP, Kafka and DNS (toFQDNs).
export {}
