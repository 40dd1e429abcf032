export * from "./scrub/index.js";
