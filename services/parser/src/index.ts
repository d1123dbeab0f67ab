export { loadParserConfig, ParserConfigSchema, type ParserConfig } from './config';
export { startParser } from './start';
export { TENANT_METADATA, tenantOf } from './tenant';
