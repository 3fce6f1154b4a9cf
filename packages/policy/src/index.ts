// @membrane/policy: Compile CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and Kubernetes NetworkPolicy into per-endpoint policy map state, and explain verdicts.
export {}
