export type { Location, LocationScheme, ParseOptions } from './location.js';
export { parseStorageUri } from './parse.js';
export { redactUri } from './redact.js';
export { SUPPORTED_URI_FORMS, URI_EXAMPLES } from './forms.js';
