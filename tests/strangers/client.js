#!/usr/bin/env node
// A ping/pong client in Node.js, written from SPEC.md.
// Usage: node client.js [--socket PATH] [--rounds N]
'use strict';
const net = require('net');

let path = 'udsocket';
let rounds = 100;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--socket') path = argv[++i];
  else if (argv[i] === '--rounds') rounds = parseInt(argv[++i], 10);
  else path = argv[i];
}

let done = 0;
let got = Buffer.alloc(0);
let finished = false;

function fail(msg) {
  if (finished) return;
  finished = true;
  console.error(`client.js: ${msg}`);
  sock.destroy();
  process.exitCode = 1;
}

const sock = net.createConnection({ path });
sock.on('connect', () => {
  if (rounds === 0) { finish(); return; }
  sock.write('ping');
});
function finish() {
  finished = true;
  sock.end('end');
  process.exitCode = 0;
}
sock.on('data', (chunk) => {
  if (finished) return;
  got = Buffer.concat([got, chunk]);
  const want = Buffer.from('pong');
  for (let i = 0; i < got.length; i++) {
    if (i >= 4 || got[i] !== want[i]) {
      fail(`round ${done + 1}: expected "pong", received ${JSON.stringify(got.toString('latin1'))}`);
      return;
    }
  }
  if (got.length === 4) {
    got = Buffer.alloc(0);
    done++;
    if (done === rounds) finish();
    else sock.write('ping');
  }
});
sock.on('error', (err) => {
  if (finished) return;
  if (err.code === 'ECONNRESET') {
    fail(`round ${done + 1}: connection reset after ${got.length} byte(s) of the reply`);
  } else {
    fail(`cannot talk to ${path}: ${err.code || err.message}`);
  }
});
sock.on('end', () => {
  if (!finished) fail(`round ${done + 1}: server closed the connection after ${got.length} byte(s) of the reply`);
});
