// Runs one of the seed README's JavaScript examples verbatim in Node, inside a thin harness.
// Node 20 has fetch but no global WebSocket, so the `ws` package stands in for the browser's.
// console.log/console.error are wrapped to report each call as one JSON line on stdout; the
// harness exits once the example has logged "Received:" EXPECT_RECEIVED times (the examples
// themselves never stop), after a short grace so a late error frame is still reported.
'use strict';
const fs = require('fs');
const path = require('path');
const util = require('util');
const vm = require('vm');

globalThis.WebSocket = require('ws');

const file = process.argv[2];
const expected = Number(process.env.EXPECT_RECEIVED || '0');
const graceMs = Number(process.env.EXIT_GRACE_MS || '300');
const hardLimitMs = Number(process.env.HARD_LIMIT_MS || '60000');
let received = 0;

function plain(value) {
  try {
    return JSON.parse(JSON.stringify(value));
  } catch (err) {
    return util.inspect(value);
  }
}

function report(level, args) {
  const line = JSON.stringify({ level, args: args.map((a) => (a instanceof Error ? String(a) : plain(a === undefined ? null : a))) });
  process.stdout.write(line + '\n');
}

console.log = (...args) => {
  report('log', args);
  if (args[0] === 'Received:') {
    received += 1;
    if (expected && received === expected) {
      setTimeout(() => process.exit(0), graceMs);
    }
  }
};
console.error = (...args) => report('error', args);

setTimeout(() => {
  report('harness', ['hard limit reached']);
  process.exit(3);
}, hardLimitMs).unref();

const code = fs.readFileSync(file, 'utf8');
vm.runInThisContext(code, { filename: path.basename(file) });
