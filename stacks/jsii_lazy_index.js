"use strict";
/*
 * Preload for the jsii kernel's node process (stacks/jsii_kernel.py puts `--require` and this
 * file on that process's command line only): the prebuilt provider packages resolve to their
 * `lib/lazy-index.js` instead of their `main`, `lib/index.js`.
 *
 * `index.js` requires every resource module of the package at once (2,212 for AWS, about 1.4 s
 * and 500 MiB); `lazy-index.js`, shipped in the same packages, exports the same submodules
 * through getters. The kernel reaches provider code only by property access on the package
 * (`pkg.s3Bucket.S3Bucket`), so it loads only what a stack uses. Before switching, the two files
 * are read and the switch is made only if lazy-index.js is nothing but getters for exactly the
 * `exports.<name> = require("<path>")` lines of index.js; otherwise a warning goes to stderr and
 * index.js is loaded, which is always correct.
 *
 * Node 20 has no public synchronous resolve hook for `require` (`module.registerHooks` arrives in
 * Node 22.15), hence the wrapper around `Module._resolveFilename`; without it nothing changes.
 */
const fs = require("fs");
const Module = require("module");
const path = require("path");

// The jsii assembly names of the Python packages in stacks/provider_import.PACKAGES.
const PACKAGES = new Set(["@cdktf/provider-aws", "@cdktf/provider-databricks", "@cdktf/provider-random"]);

const EAGER_EXPORT = /^exports\.([A-Za-z_$][\w$]*) = require\("(\.\/[^"]+)"\);$/;
const LAZY_EXPORT =
  /^Object\.defineProperty\(exports, '([A-Za-z_$][\w$]*)', \{ get: function \(\) \{ return require\('(\.\/[^']+)'\); \} \}\);$/;
// Lines of lazy-index.js that run nothing.
const INERT = /^(?:"use strict";|\/\/.*|\/\*\*|\s\*.*|)$/;

/** `name -> module path` of index.js's exports, or a reason why they cannot be read. */
function eagerExports(source) {
  const exported = new Map();
  for (const line of source.split("\n")) {
    const match = EAGER_EXPORT.exec(line);
    if (match) exported.set(match[1], match[2]);
  }
  // Every require and every assigned export must be one of the lines read above.
  const requires = source.match(/\brequire\(/g) || [];
  const assigned = new Set(Array.from(source.matchAll(/\bexports\.([A-Za-z_$][\w$]*) =/g), (m) => m[1]));
  if (requires.length !== exported.size) return "index.js requires something other than its submodules";
  if (assigned.size !== exported.size) return "index.js exports something other than its submodules";
  return exported;
}

/** `name -> module path` of lazy-index.js's getters, or a reason why it is not only those. */
function lazyExports(source) {
  const exported = new Map();
  for (const line of source.split("\n")) {
    const match = LAZY_EXPORT.exec(line);
    if (match) exported.set(match[1], match[2]);
    else if (!INERT.test(line)) return `lazy-index.js has an unexpected line: ${line.slice(0, 120)}`;
  }
  return exported;
}

/** Why `lazy` cannot replace `index`, or "" when it can. */
function mismatch(index, lazy) {
  let eager;
  let lazyMap;
  try {
    eager = eagerExports(fs.readFileSync(index, "utf8"));
    lazyMap = lazyExports(fs.readFileSync(lazy, "utf8"));
  } catch (error) {
    return error.message;
  }
  if (typeof eager === "string") return eager;
  if (typeof lazyMap === "string") return lazyMap;
  if (eager.size === 0) return "index.js exports no submodules";
  const differ = [...new Set([...eager.keys(), ...lazyMap.keys()])].filter((n) => eager.get(n) !== lazyMap.get(n));
  return differ.length ? `the two files export different submodules: ${differ.slice(0, 5).join(", ")}` : "";
}

const decided = new Map();

/** The file to load for `request`, which node resolved to `resolved`. */
function entryFor(request, resolved) {
  if (!decided.has(resolved)) {
    const lazy = path.join(path.dirname(resolved), "lazy-index.js");
    const problem = path.basename(resolved) === "index.js" ? mismatch(resolved, lazy) : `main is ${resolved}`;
    if (problem) {
      process.stderr.write(`warning: ${request}: loading index.js eagerly (${problem}); see stacks/jsii_lazy_index.js\n`);
    }
    decided.set(resolved, problem ? resolved : lazy);
  }
  return decided.get(resolved);
}

const resolveFilename = Module._resolveFilename;
if (typeof resolveFilename === "function") {
  Module._resolveFilename = function resolveLazyIndex(request, ...rest) {
    const resolved = resolveFilename.call(this, request, ...rest);
    return PACKAGES.has(request) ? entryFor(request, resolved) : resolved;
  };
}

module.exports = { PACKAGES };
