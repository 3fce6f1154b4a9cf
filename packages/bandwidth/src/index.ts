// @membrane/bandwidth: EDT egress shaping and ingress token buckets: rate parsing, throttle entries, models.
export {}
