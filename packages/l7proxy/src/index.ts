// @membrane/l7proxy: Transparent L7 policy enforcement for HTTP, Kafka and DNS (toFQDNs).

export { FqdnCache, type FqdnCacheOptions, type FqdnExpiry } from './dns/cache'
export {
  type FqdnPolicyTarget,
  FqdnPolicyUpdater,
  type FqdnPolicyUpdaterOptions,
} from './dns/fqdn-policy'
export {
  type DnsCounter,
  type DnsLearnEvent,
  DnsProxy,
  type DnsProxyOptions,
} from './dns/proxy'
export {
  answerAddresses,
  buildDnsError,
  buildDnsQuery,
  type DnsMessage,
  type DnsQuestion,
  DnsRcode,
  type DnsRecord,
  DnsType,
  parseDnsMessage,
} from './dns/wire'
export { L7ProxyError, L7ProxyErrorCode, WireFormatError } from './errors'
export {
  type HttpCounter,
  HttpProxy,
  type HttpProxyOptions,
} from './http/proxy'
export {
  type KafkaCounter,
  KafkaProxy,
  type KafkaProxyOptions,
} from './kafka/proxy'
export {
  buildKafkaErrorResponse,
  KafkaError,
  KafkaReader,
  type KafkaRequestInfo,
  KafkaWriter,
  parseKafkaRequest,
} from './kafka/wire'
export {
  type DispatchCounter,
  L7Proxy,
  type L7ProxyOptions,
  type L7ProxyStats,
} from './l7proxy'
export {
  datapathOriginResolver,
  type OriginResolver,
  type ProxyOrigin,
  type ProxyOriginLookup,
  type ProxyPeer,
  StaticOriginResolver,
} from './origin'
export {
  type L7PolicyQuery,
  type L7PolicySource,
  repositoryPolicySource,
  staticPolicySource,
} from './policy'
export {
  type BatchRecordsOptions,
  batchRecords,
  type L7ProxyRecord,
  type L7RecordPeer,
  type RecordBatcher,
  type RecordSink,
} from './records'
export {
  connectMarked,
  type SocketMarker,
  upstreamMarkFor,
} from './upstream'
