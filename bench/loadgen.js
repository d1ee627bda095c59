#!/usr/bin/env node
/*
 * Load generator for bench/run.py: many Socket.IO clients in one Node.js process.
 *
 * Protocols:
 *   --proto 09     Socket.IO 0.9 (protocol revision 1): handshake GET /socket.io/1/,
 *                  then websocket (/socket.io/1/websocket/<sid>) or xhr-polling
 *                  (GET and POST /socket.io/1/xhr-polling/<sid>).
 *   --proto eio4   Engine.IO 4 / Socket.IO 5 (Flask-SocketIO 5): websocket
 *                  (/socket.io/?EIO=4&transport=websocket) or polling.
 *
 * Workloads (every one bounded in count and in time):
 *   echo    each client emits `echo` with a payload and a data ack, waits for the
 *           ack, repeats; stops at --total acks or --max-seconds. Every payload
 *           carries its own number, so an ack with another emit's data is wrong.
 *   bcast   client 0 emits `bcast`; the server broadcasts `b` to every client. The
 *           sender keeps at most --window broadcasts ahead of the slowest client.
 *           Every broadcast carries its number: each client counts a number it has
 *           already had as extra, one never sent as wrong.
 *   idle    connect --clients, hold --hold seconds answering heartbeats, check that
 *           every client is still connected at the end and got and answered at
 *           least --min-heartbeats during the hold itself.
 * Messages are counted only when right: "messages" are the acks or deliveries that
 * arrived once with the right data; "lost", "wrong" and "extra" (duplicates, acks
 * for no emit) are counted apart, and run.py fails a run with any of them.
 * Before echo and bcast are timed, an untimed warm-up of --warmup acks or
 * deliveries (default 2,000, at most --total) runs on the same clients.
 *
 * Talking to run.py: one JSON object per line on stdout, each with an "event"
 * ("warmed" for idle, then "ready", "done", "closed"). After "warmed", "ready" and
 * "done" the generator waits for a line "next" on stdin, so that run.py can read
 * the server's CPU and memory at exactly those points. EOF on stdin ends the run.
 * The generator's own CPU (process.cpuUsage) over the workload is in "done": if it
 * nears 100% of a core the generator, not the server, is the bottleneck.
 *
 * Needs the `ws` package (run.py installs it into bench/.peers/node_modules).
 */
'use strict';

const http = require('http');
const readline = require('readline');
const WebSocket = require('ws');

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const opts = {
    host: '127.0.0.1', port: 0, proto: '09', transport: 'websocket', workload: 'echo',
    clients: 10, total: 20000, maxSeconds: 15, payloadBytes: 64, window: 10,
    hold: 12.5, minHeartbeats: 2, warm: 10, concurrency: 100, connectSeconds: 120,
    warmup: -1,
  };
  const names = {
    '--host': ['host', String], '--port': ['port', Number], '--proto': ['proto', String],
    '--transport': ['transport', String], '--workload': ['workload', String],
    '--clients': ['clients', Number], '--total': ['total', Number],
    '--max-seconds': ['maxSeconds', Number], '--payload-bytes': ['payloadBytes', Number],
    '--window': ['window', Number], '--hold': ['hold', Number],
    '--min-heartbeats': ['minHeartbeats', Number], '--warm': ['warm', Number],
    '--concurrency': ['concurrency', Number], '--connect-seconds': ['connectSeconds', Number],
    '--warmup': ['warmup', Number],
  };
  for (let i = 0; i < argv.length; i += 2) {
    const spec = names[argv[i]];
    if (!spec || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    const value = spec[1](argv[i + 1]);
    if (spec[1] === Number && !Number.isFinite(value)) throw new Error(`bad number for ${argv[i]}`);
    opts[spec[0]] = value;
  }
  if (!opts.port) throw new Error('--port is required');
  if (opts.warmup < 0) opts.warmup = Math.min(2000, opts.total);
  if (!['09', 'eio4'].includes(opts.proto)) throw new Error('--proto is 09 or eio4');
  if (!['websocket', 'xhr-polling'].includes(opts.transport)) {
    throw new Error('--transport is websocket or xhr-polling');
  }
  return opts;
}

// ---------------------------------------------------------------- output

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const errors = {};
function countError(kind) {
  errors[kind] = (errors[kind] || 0) + 1;
}

// Acks whose id matches no emit waiting for one (a second ack for the same emit,
// or one for an emit never made): a workload reports the ones of its own time as extra.
let unexpectedAcks = 0;

// A promise per "next" line from run.py; EOF ends the process.
const pendingNext = [];
let stdinLines = 0;
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() !== 'next') return;
  stdinLines += 1;
  const resolve = pendingNext.shift();
  if (resolve) resolve();
});
rl.on('close', () => process.exit(0));
let consumed = 0;
function waitNext() {
  consumed += 1;
  if (stdinLines >= consumed) return Promise.resolve();
  return new Promise((resolve) => pendingNext.push(resolve));
}

// ---------------------------------------------------------------- HTTP

function httpRequest(opts, agent, method, path, body) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (body !== undefined) {
      headers['Content-Type'] = 'text/plain;charset=UTF-8';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const req = http.request({ host: opts.host, port: opts.port, method, path, agent, headers },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode} ${text.slice(0, 80)}`));
          else resolve(text);
        });
        res.on('error', reject);
      });
    req.setTimeout(60000, () => req.destroy(new Error('HTTP timeout')));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// Handshakes before a WebSocket go on connections that close, so that no idle
// keep-alive socket stays behind on the server (Node 20's global agent keeps them).
const closingAgent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
// Polling reuses connections, as a browser does.
const pollingAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

// ---------------------------------------------------------------- clients

const FRAME = '\ufffd';

/** Split a 0.9 payload (\ufffd<len>\ufffd<packet>...) into packets. */
function split09(text) {
  if (text.charCodeAt(0) !== 0xfffd) return text ? [text] : [];
  const packets = [];
  let pos = 0;
  while (pos < text.length) {
    const mark = text.indexOf(FRAME, pos + 1);
    if (text[pos] !== FRAME || mark < 0) throw new Error('bad 0.9 payload framing');
    const length = Number(text.slice(pos + 1, mark));
    packets.push(text.substr(mark + 1, length));  // JS lengths are UTF-16 units, as the framing
    pos = mark + 1 + length;
  }
  return packets;
}

function frame09(packets) {
  if (packets.length === 1) return packets[0];
  return packets.map((p) => `${FRAME}${p.length}${FRAME}${p}`).join('');
}

/** What the clients of both protocols share: acks, heartbeats, callbacks. */
class BaseClient {
  constructor(opts) {
    this.opts = opts;
    this.nextId = 1;
    this.pending = new Map();   // ack id -> callback
    this.heartbeats = 0;        // heartbeats (0.9) or pings (EIO4) received
    this.answered = 0;          // ... and answered
    this.connected = false;
    this.closed = false;
    this.onBroadcast = null;    // set by the bcast workload
    this.ws = null;
    this.sid = null;
    this.outq = [];             // polling: packets waiting for the POST in flight
    this.posting = false;
    this.connectResolve = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connect timeout')), 30000);
      this.connectResolve = () => { clearTimeout(timer); resolve(); };
      this.open().catch((err) => { clearTimeout(timer); reject(err); });
    });
  }

  markConnected() {
    this.connected = true;
    if (this.connectResolve) {
      const resolve = this.connectResolve;
      this.connectResolve = null;
      resolve();
    }
  }

  openWebSocket(url) {
    const ws = new WebSocket(url, { perMessageDeflate: false, agent: closingAgent });
    this.ws = ws;
    ws.on('message', (data) => {
      try {
        this.onText(data.toString('utf8'));
      } catch (err) {
        countError(`parse: ${err.message}`);
      }
    });
    ws.on('close', () => { this.closed = true; });
    ws.on('error', (err) => { countError(`ws: ${err.code || err.message}`); this.closed = true; });
  }

  /** Send one encoded packet on the open transport; false when it could not go. */
  sendPacket(text) {
    if (this.closed) return false;
    if (this.ws) {
      if (this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(text);
      return true;
    }
    this.outq.push(text);
    this.flush();
    return true;
  }

  flush() {
    if (this.posting || this.outq.length === 0 || this.closed) return;
    const body = this.framePayload(this.outq);
    this.outq = [];
    this.posting = true;
    httpRequest(this.opts, pollingAgent, 'POST', this.pollPath(), body).then(() => {
      this.posting = false;
      this.flush();
    }, (err) => {
      this.posting = false;
      countError(`POST: ${err.message}`);
      this.closed = true;
    });
  }

  /** The long-poll loop: one GET at a time, re-issued as soon as one returns. */
  poll() {
    if (this.closed) return;
    httpRequest(this.opts, pollingAgent, 'GET', this.pollPath()).then((text) => {
      try {
        this.onText(text);
      } catch (err) {
        countError(`parse: ${err.message}`);
      }
      this.poll();
    }, (err) => {
      if (!this.closed) countError(`GET: ${err.message}`);
      this.closed = true;
    });
  }

  emit(name, args, callback) {
    const id = this.nextId++;
    this.pending.set(id, callback);
    this.sendPacket(this.encodeEvent(name, args, id));
  }

  onAck(id, args) {
    const callback = this.pending.get(id);
    if (callback === undefined) {
      countError('ack with unknown id');
      unexpectedAcks += 1;
      return;
    }
    this.pending.delete(id);
    callback(args);
  }

  close() {
    this.closed = true;
    if (this.ws) {
      this.ws.terminate();
    }
  }
}

/** Socket.IO 0.9 over websocket or xhr-polling. */
class Client09 extends BaseClient {
  async open() {
    const body = await httpRequest(this.opts, closingAgent, 'GET', `/socket.io/1/?t=${Date.now()}`);
    this.sid = body.split(':')[0];
    if (!this.sid) throw new Error(`bad handshake ${body.slice(0, 80)}`);
    if (this.opts.transport === 'websocket') {
      this.openWebSocket(`ws://${this.opts.host}:${this.opts.port}/socket.io/1/websocket/${this.sid}`);
    } else {
      this.poll();
    }
  }

  pollPath() {
    return `/socket.io/1/xhr-polling/${this.sid}?t=${Date.now()}`;
  }

  framePayload(packets) {
    return frame09(packets);
  }

  encodeEvent(name, args, id) {
    return `5:${id}+::${JSON.stringify({ name, args })}`;
  }

  onText(text) {
    for (const packet of split09(text)) this.onPacket(packet);
  }

  onPacket(p) {
    // type:id:endpoint:data, data may hold colons
    const c1 = p.indexOf(':');
    const c2 = p.indexOf(':', c1 + 1);
    const c3 = c2 < 0 ? -1 : p.indexOf(':', c2 + 1);
    const data = c3 < 0 ? '' : p.slice(c3 + 1);
    switch (p.slice(0, c1 < 0 ? p.length : c1)) {
      case '1':
        if (c2 >= 0 && p.slice(c2 + 1, c3 < 0 ? undefined : c3) === '') this.markConnected();
        break;
      case '2':
        this.heartbeats += 1;
        if (this.sendPacket('2::')) this.answered += 1;
        break;
      case '5': {
        const event = JSON.parse(data);
        if (event.name === 'b' && this.onBroadcast) this.onBroadcast(event.args);
        break;
      }
      case '6': {
        const plus = data.indexOf('+');
        const id = Number(plus < 0 ? data : data.slice(0, plus));
        this.onAck(id, plus < 0 ? [] : JSON.parse(data.slice(plus + 1)));
        break;
      }
      case '0':
        this.closed = true;
        countError('server disconnect');
        break;
      case '7':
        countError(`error packet ${p}`);
        break;
      case '8':
        break;
      default:
        countError(`unexpected packet ${p.slice(0, 20)}`);
    }
  }
}

/** Engine.IO 4 / Socket.IO 5 over websocket or polling. */
class ClientEIO4 extends BaseClient {
  async open() {
    if (this.opts.transport === 'websocket') {
      this.openWebSocket(`ws://${this.opts.host}:${this.opts.port}/socket.io/?EIO=4&transport=websocket`);
      return;
    }
    const body = await httpRequest(this.opts, pollingAgent, 'GET',
      `/socket.io/?EIO=4&transport=polling&t=${Date.now()}`);
    for (const packet of body.split('\x1e')) {
      if (packet[0] === '0') this.sid = JSON.parse(packet.slice(1)).sid;
    }
    if (!this.sid) throw new Error(`bad EIO4 open ${body.slice(0, 80)}`);
    this.sendPacket('40');
    this.poll();
  }

  pollPath() {
    return `/socket.io/?EIO=4&transport=polling&sid=${this.sid}&t=${Date.now()}`;
  }

  framePayload(packets) {
    return packets.join('\x1e');
  }

  encodeEvent(name, args, id) {
    return `42${id}${JSON.stringify([name, ...args])}`;
  }

  onText(text) {
    for (const packet of text.split('\x1e')) this.onPacket(packet);
  }

  onPacket(p) {
    switch (p[0]) {
      case '0':   // engine.io open (websocket): join the default namespace
        if (this.ws) this.sendPacket('40');
        break;
      case '2':   // ping
        this.heartbeats += 1;
        if (this.sendPacket('3')) this.answered += 1;
        break;
      case '4':
        this.onSocketIO(p.slice(1));
        break;
      case '1':
        this.closed = true;
        countError('server close');
        break;
      case '6':   // noop (polling)
        break;
      default:
        countError(`unexpected packet ${p.slice(0, 20)}`);
    }
  }

  onSocketIO(p) {
    const kind = p[0];
    let i = 1;
    while (i < p.length && p.charCodeAt(i) >= 48 && p.charCodeAt(i) <= 57) i += 1;
    const id = i > 1 ? Number(p.slice(1, i)) : null;
    if (kind === '0') {
      this.markConnected();
    } else if (kind === '2') {
      const [name, ...args] = JSON.parse(p.slice(i));
      if (name === 'b' && this.onBroadcast) this.onBroadcast(args);
    } else if (kind === '3') {
      this.onAck(id, JSON.parse(p.slice(i)));
    } else if (kind === '4') {
      countError(`connect error ${p.slice(0, 80)}`);
    } else if (kind === '1') {
      this.closed = true;
      countError('namespace disconnect');
    }
  }
}

function makeClient(opts) {
  return opts.proto === '09' ? new Client09(opts) : new ClientEIO4(opts);
}

/** Connect `count` new clients, at most `concurrency` at a time. */
async function connectMany(opts, count, into) {
  const started = process.hrtime.bigint();
  const deadline = Date.now() + opts.connectSeconds * 1000;
  let next = 0;
  let failed = 0;
  async function worker() {
    while (next < count && Date.now() < deadline) {
      next += 1;
      const client = makeClient(opts);
      try {
        await client.connect();
        into.push(client);
      } catch (err) {
        failed += 1;
        countError(`connect: ${err.message}`);
        client.close();
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, count) }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { attempted: next, failed, seconds };
}

// ---------------------------------------------------------------- workloads

function cpuSeconds(usage) {
  return (usage.user + usage.system) / 1e6;
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function payloadOf(bytes) {
  const unit = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
}

const NUMBER_DIGITS = 9;

/**
 * The payload of message `n` of a run: `tag` (one letter: the warm-up's and the
 * timed run's messages differ), n in NUMBER_DIGITS digits, then `filler`; as long
 * as the plain payload, so every server gets the same bytes to carry as before.
 */
function numberedPayload(tag, n, filler) {
  const head = tag + String(n).padStart(NUMBER_DIGITS, '0');
  return head + filler.slice(Math.min(head.length, filler.length));
}

/** The number in a payload made by numberedPayload(tag, ...), or 0 when it is not one. */
function payloadNumber(tag, text, filler) {
  if (typeof text !== 'string' || text[0] !== tag) return 0;
  const n = Number(text.slice(1, 1 + NUMBER_DIGITS));
  return Number.isInteger(n) && text === numberedPayload(tag, n, filler) ? n : 0;
}

/** Run `body(finish)` until it calls finish() or the hard time limit passes. */
function runBounded(limitMs, body) {
  return new Promise((resolve) => {
    let over = false;
    const finish = () => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(finish, limitMs);
    body(finish);
  });
}

const DRAIN_MS = 5000;  // after the deadline, how long in-flight messages may take

async function echoWorkload(opts, clients, tag) {
  const filler = payloadOf(opts.payloadBytes);
  const deadline = Date.now() + opts.maxSeconds * 1000;
  const latencies = [];
  const unexpectedBefore = unexpectedAcks;
  let sent = 0;
  let acks = 0;
  let wrong = 0;
  let inflight = 0;
  let lastAck = process.hrtime.bigint();
  const t0 = process.hrtime.bigint();
  await runBounded(opts.maxSeconds * 1000 + DRAIN_MS, (finish) => {
    const step = (client) => {
      if (sent >= opts.total || Date.now() >= deadline || client.closed) {
        if (inflight === 0) finish();
        return;
      }
      sent += 1;
      inflight += 1;
      const start = process.hrtime.bigint();
      const payload = numberedPayload(tag, sent, filler);
      client.emit('echo', [payload], (args) => {
        inflight -= 1;
        lastAck = process.hrtime.bigint();
        latencies.push(Number(lastAck - start) / 1e6);
        // a wrong ack is not a message: it is counted apart, and fails the run
        if (args.length !== 1 || args[0] !== payload) wrong += 1;
        else acks += 1;
        step(client);
      });
    };
    clients.forEach(step);
  });
  const seconds = Number(lastAck - t0) / 1e9;
  latencies.sort((a, b) => a - b);
  return {
    messages: acks, sent, lost: sent - acks - wrong, wrong,
    extra: unexpectedAcks - unexpectedBefore,
    closed: clients.filter((c) => c.closed).length, seconds,
    rate: seconds > 0 ? acks / seconds : 0,
    latency_ms_p50: percentile(latencies, 0.5), latency_ms_p99: percentile(latencies, 0.99),
  };
}

async function bcastWorkload(opts, clients, tag) {
  const filler = payloadOf(opts.payloadBytes);
  const n = clients.length;
  const rounds = Math.max(1, Math.ceil(opts.total / n));
  const countAt = new Uint32Array(rounds + 2);  // countAt[k]: clients that got their k-th
  const deadline = Date.now() + opts.maxSeconds * 1000;
  const sender = clients[0];
  const got = new Uint32Array(n);               // distinct right broadcasts per client
  let sentRounds = 0;
  let complete = 0;                             // rounds every client has received
  let deliveries = 0;
  let wrong = 0;
  let extra = 0;
  let lastDelivery = process.hrtime.bigint();
  const t0 = process.hrtime.bigint();
  await runBounded(opts.maxSeconds * 1000 + DRAIN_MS, (finish) => {
    const pump = () => {
      while (sentRounds < rounds && Date.now() < deadline && sentRounds - complete < opts.window
             && !sender.closed) {
        sentRounds += 1;
        sender.emit('bcast', [numberedPayload(tag, sentRounds, filler)], () => {});
      }
      if (complete === sentRounds && (sentRounds === rounds || Date.now() >= deadline)) finish();
    };
    clients.forEach((client, index) => {
      // which broadcasts this client has had: a second copy is extra, not a delivery
      const seen = new Uint8Array(rounds + 1);
      client.onBroadcast = (args) => {
        lastDelivery = process.hrtime.bigint();
        const number = payloadNumber(tag, args[0], filler);
        if (number === 0 || number > sentRounds) {
          wrong += 1;
        } else if (seen[number]) {
          extra += 1;
        } else {
          seen[number] = 1;
          got[index] += 1;
          deliveries += 1;
          countAt[got[index]] += 1;
        }
        while (complete < sentRounds && countAt[complete + 1] === n) complete += 1;
        pump();
      };
    });
    // the deadline must end the run even when no delivery arrives to call pump()
    const ticker = setInterval(pump, 100);
    const stop = setTimeout(() => clearInterval(ticker), opts.maxSeconds * 1000 + DRAIN_MS);
    stop.unref();
    pump();
  });
  const seconds = Number(lastDelivery - t0) / 1e9;
  return {
    messages: deliveries, rounds: sentRounds, complete_rounds: complete,
    lost: sentRounds * n - deliveries, wrong, extra,
    closed: clients.filter((c) => c.closed).length, seconds,
    rate: seconds > 0 ? deliveries / seconds : 0,
  };
}

async function idleWorkload(opts, clients) {
  // Counted over the hold only: heartbeats from the connection phase say nothing
  // about a server that stopped sending them, or that drops clients later.
  const receivedBefore = clients.map((c) => c.heartbeats);
  const answeredBefore = clients.map((c) => c.answered);
  await new Promise((resolve) => setTimeout(resolve, opts.hold * 1000));
  const received = clients.map((c, i) => c.heartbeats - receivedBefore[i]);
  const answered = clients.map((c, i) => c.answered - answeredBefore[i]);
  const alive = clients.filter((c) => !c.closed).length;
  const short = clients.filter((c, i) => c.closed || received[i] < opts.minHeartbeats
                                          || answered[i] < opts.minHeartbeats).length;
  const least = (values) => values.reduce((a, b) => Math.min(a, b), Infinity);
  return {
    messages: received.reduce((a, b) => a + b, 0),
    alive, closed: clients.length - alive,
    heartbeats_min: least(clients.map((c) => c.heartbeats)),
    heartbeats_in_hold_min: least(received), answered_in_hold_min: least(answered),
    heartbeats_wanted: opts.minHeartbeats,
    unanswered: clients.reduce((a, c) => a + c.heartbeats - c.answered, 0),
    short_of_heartbeats: short,
    heartbeats_ok: short === 0 && clients.length > 0,
  };
}

// ---------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  // a hard bound on the whole process, whatever happens to run.py or the server
  const hardLimit = (opts.connectSeconds * 2 + opts.maxSeconds + opts.hold + 120) * 1000;
  setTimeout(() => { out({ event: 'abort', reason: 'hard time limit' }); process.exit(2); },
    hardLimit).unref();

  const clients = [];
  let connect = { attempted: 0, failed: 0, seconds: 0 };
  let warmCount = 0;
  if (opts.workload === 'idle' && opts.warm > 0) {
    // a few connections first, so that run.py's "before" memory reading has the
    // server's lazily imported code and first-connection caches in it
    const warm = await connectMany(opts, Math.min(opts.warm, opts.clients), clients);
    warmCount = clients.length;
    out({ event: 'warmed', connected: warmCount, failed: warm.failed });
    await waitNext();
  }
  const connectCpu0 = process.cpuUsage();
  connect = await connectMany(opts, opts.clients - warmCount, clients);
  const connectCpu = cpuSeconds(process.cpuUsage(connectCpu0));
  const fresh = clients.length - warmCount;
  let warmup = null;
  // a short untimed run first, so that JIT compilers and caches are warm on every server
  if (clients.length > 0 && opts.warmup > 0) {
    const quiet = { ...opts, maxSeconds: 5 };
    if (opts.workload === 'echo') {
      warmup = await echoWorkload({ ...quiet, total: opts.warmup }, clients, 'w');
    } else if (opts.workload === 'bcast') {
      warmup = await bcastWorkload({ ...quiet, total: opts.warmup }, clients, 'w');
      for (const client of clients) client.onBroadcast = null;
    }
  }
  out({
    event: 'ready', connected: clients.length, new_connections: fresh, failed: connect.failed,
    connect_seconds: connect.seconds,
    connects_per_s: connect.seconds > 0 ? fresh / connect.seconds : 0,
    loadgen_connect_cpu_pct: connect.seconds > 0 ? (100 * connectCpu) / connect.seconds : 0,
    // a server that loses or garbles messages while warming up is as wrong as in the run
    warmup: warmup && { lost: warmup.lost, wrong: warmup.wrong, extra: warmup.extra },
  });
  await waitNext();

  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  let result;
  if (clients.length === 0) {
    result = { messages: 0, seconds: 0, rate: 0, note: 'no client connected' };
  } else if (opts.workload === 'echo') {
    result = await echoWorkload(opts, clients, 't');
  } else if (opts.workload === 'bcast') {
    result = await bcastWorkload(opts, clients, 't');
  } else if (opts.workload === 'idle') {
    result = await idleWorkload(opts, clients);
  } else {
    throw new Error(`unknown workload ${opts.workload}`);
  }
  const cpu = cpuSeconds(process.cpuUsage(cpu0));
  const wall = Number(process.hrtime.bigint() - wall0) / 1e9;
  out({
    event: 'done', ...result, clients: clients.length,
    loadgen_cpu_s: cpu, loadgen_cpu_pct: wall > 0 ? (100 * cpu) / wall : 0, errors,
  });
  await waitNext();
  for (const client of clients) client.close();
  out({ event: 'closed' });
  // give terminate() a moment to send the close frames' FINs
  setTimeout(() => process.exit(0), 200);
}

main().catch((err) => {
  out({ event: 'abort', reason: String(err && err.stack ? err.stack : err) });
  process.exit(2);
});
