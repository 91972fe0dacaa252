#!/usr/bin/env node
// Correct ping/pong server in Node.js, written from SPEC.md only.
// usage: node server.js [PATH]   (default ./udsocket, "@name" = abstract)
'use strict';
const net = require('net');
const fs = require('fs');
const path = require('path');

const MAX_PATH = 107;
const IDLE_TIMEOUT = 120000, WRITE_TIMEOUT = 10000;
const O_PATH = 0o10000000;
const sockPath = process.argv[2] || 'udsocket';
const abstract = sockPath.startsWith('@');
const conns = new Set();
const counts = { accepted: 0, end: 0, invalid: 0, eof: 0, timeout: 0, ioerror: 0 };
let ref = null;  // O_PATH fd of the socket file we created

function die(msg) {
  try { fs.writeSync(2, `server: ${msg}\n`); } catch (e) { }
  process.exit(1);
}
function kindOf(st) {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'a non-socket file';
}
const same = (a, b) => a.dev === b.dev && a.ino === b.ino;
function privateDir() {
  return fs.mkdtempSync(path.join(path.dirname(sockPath), '.' + path.basename(sockPath) + '.udsping-'));
}
function putBack(moved, what) {
  try { fs.linkSync(moved, sockPath); fs.unlinkSync(moved); fs.rmdirSync(path.dirname(moved)); return true; }
  catch (e) { fs.writeSync(2, `server: ${what} could not be put back at ${sockPath}; it is at ${moved}\n`); return false; }
}

function probe(cb) {
  let done = false;
  const s = net.connect(sockPath);
  const finish = (r) => { if (done) return; done = true; clearTimeout(t); s.destroy(); cb(r); };
  const t = setTimeout(() => finish('connect did not finish within 1s'), 1000);
  s.on('connect', () => finish('live'));
  s.on('error', (e) => finish(e.code === 'ECONNREFUSED' ? 'refused' : (e.code === 'EAGAIN' ? 'live' : `connect failed: ${e.code}`)));
}

function inspect(cb) {
  let st;
  try { st = fs.lstatSync(sockPath); } catch (e) { if (e.code === 'ENOENT') return cb(); die(`${sockPath}: ${e.message}`); }
  if (!st.isSocket()) die(`${sockPath}: refusing to start: ${kindOf(st)} is at the path`);
  let fd;
  try { fd = fs.openSync(sockPath, O_PATH | fs.constants.O_NOFOLLOW); } catch (e) { if (e.code === 'ENOENT') return cb(); die(`${sockPath}: ${e.message}`); }
  if (!same(fs.fstatSync(fd), st)) die(`${sockPath}: the file changed while inspecting it; refusing to start`);
  probe((r) => {
    if (r === 'live') die(`${sockPath}: another server is listening there; refusing to start`);
    if (r !== 'refused') die(`${sockPath}: cannot tell whether the socket there is stale (${r}); refusing to start`);
    const priv = privateDir();
    const moved = path.join(priv, 'stale');
    try { fs.renameSync(sockPath, moved); } catch (e) { fs.rmdirSync(priv); fs.closeSync(fd); return cb(); }
    if (same(fs.lstatSync(moved), fs.fstatSync(fd))) {
      fs.unlinkSync(moved); fs.rmdirSync(priv); fs.closeSync(fd); return cb();
    }
    putBack(moved, 'the file that replaced the stale socket');
    die(`${sockPath}: the stale socket was replaced by another file; refusing to start`);
  });
}

function decode(st, buf) {
  let pongs = 0;
  for (const b of buf) {
    if (st.tok === null) {
      if (b === 0x70) { st.tok = 'ping'; st.pos = 1; }
      else if (b === 0x65) { st.tok = 'end'; st.pos = 1; }
      else return [pongs, 'invalid'];
    } else if (b === st.tok.charCodeAt(st.pos)) {
      st.pos++;
      if (st.pos === st.tok.length) {
        const t = st.tok; st.tok = null; st.pos = 0;
        if (t === 'end') return [pongs, 'end'];
        pongs++;
      }
    } else return [pongs, 'invalid'];
  }
  return [pongs, null];
}

function onConnection(sock) {
  counts.accepted++;
  conns.add(sock);
  const st = { tok: null, pos: 0 };
  let finished = false, wtimer = null;
  const finish = (how, hard) => {
    if (finished) return; finished = true;
    counts[how] = (counts[how] || 0) + 1;
    sock.pause();
    if (hard) sock.destroy();
    else sock.end(() => sock.destroy());   // flush owed pongs, then close the fd
  };
  sock.setTimeout(IDLE_TIMEOUT, () => finish('timeout', true));
  sock.on('data', (buf) => {
    if (finished) return;
    const [pongs, how] = decode(st, buf);
    if (pongs) {
      if (!sock.write('pong'.repeat(pongs)) && !wtimer) {
        wtimer = setTimeout(() => finish('timeout', true), WRITE_TIMEOUT);
        sock.once('drain', () => { clearTimeout(wtimer); wtimer = null; });
      }
    }
    if (how) finish(how, false);
  });
  sock.on('end', () => finish('eof', false));
  sock.on('error', (e) => finish(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'eof' : 'ioerror', true));
  sock.on('close', () => { conns.delete(sock); if (wtimer) clearTimeout(wtimer); });
}

function removeOwn() {
  if (abstract || ref === null) return;
  let priv;
  try { priv = privateDir(); } catch (e) { return; }
  const moved = path.join(priv, 'socket');
  try { fs.renameSync(sockPath, moved); } catch (e) { fs.rmdirSync(priv); return; }
  if (same(fs.lstatSync(moved), fs.fstatSync(ref))) { fs.unlinkSync(moved); fs.rmdirSync(priv); return; }
  putBack(moved, 'the file that replaced the socket');
}

let stopping = false;
function stop() {
  if (stopping) return; stopping = true;
  for (const s of conns) s.destroy();
  removeOwn();
  process.exit(0);   // not server.close(): libuv would unlink the bind-time name
}

const STOPS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2', 'SIGALRM', 'SIGVTALRM', 'SIGPROF', 'SIGIO', 'SIGPWR', 'SIGXCPU'];
for (const s of STOPS) { try { process.on(s, stop); } catch (e) { } }
process.on('SIGUSR1', () => { try { fs.writeSync(2, `server: counts ${JSON.stringify({ ...counts, open: conns.size })}\n`); } catch (e) { } });
try { process.on('SIGXFSZ', () => { }); } catch (e) { }

const len = Buffer.byteLength(sockPath);
if (len > MAX_PATH) die(`socket path '${sockPath}' is too long: ${len} bytes (at most ${MAX_PATH} fit in sun_path)`);

const server = net.createServer({ pauseOnConnect: false }, onConnection);
server.on('error', (e) => die(`${sockPath}: cannot listen: ${e.message}`));

if (abstract) {
  server.listen('\0' + sockPath.slice(1), 128);
} else {
  inspect(() => {
    const priv = privateDir();
    const dfd = fs.openSync(priv, 'r');
    const inner = path.join(priv, 'socket');
    const cleanup = () => { try { fs.unlinkSync(inner); } catch (e) { } fs.closeSync(dfd); fs.rmdirSync(priv); };
    const old = process.umask(0o177);
    server.once('error', (e) => { cleanup(); die(`${sockPath}: cannot bind: ${e.message}`); });
    server.listen({ path: `/proc/self/fd/${dfd}/socket`, backlog: 128 }, () => {
      process.umask(old);
      try {
        fs.chmodSync(inner, 0o600);
        ref = fs.openSync(inner, O_PATH | fs.constants.O_NOFOLLOW);
        if (!fs.fstatSync(ref).isSocket()) throw new Error('bound socket replaced');
        fs.linkSync(inner, sockPath);   // never replaces
      } catch (e) {
        cleanup();
        if (e.code === 'EEXIST') die(`${sockPath}: something appeared at the path while starting; refusing to start`);
        die(`${sockPath}: cannot bind: ${e.message}`);
      }
      fs.unlinkSync(inner); fs.closeSync(dfd); fs.rmdirSync(priv);
    });
  });
}
