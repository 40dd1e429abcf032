export type ScrubOptions = import("./text.js").ScrubOptions;
export type Remark = import("./text.js").Remark;
export type Rule = import("./rules.js").Rule;
export { FILTERED, foldKey, keyRule, scrubEvent } from "./event.js";
export { clearCache, scrubText } from "./text.js";
export { ALLOWED_KEYS, OPTIONAL_RULES, RULES, RULES_URL } from "./rules.js";
