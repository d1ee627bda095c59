// socket.io-client 0.9.16 as a Node.js program uses it: connect over one
// transport, emit with an ack, join a room and get what is sent to it, answer
// a server's question (callback=), get a message whose sender asked for an
// ack (send(..., callback=)), disconnect. Prints one JSON line.
//
// With a third argument "boot" it connects with ?boot=1, which the server
// accepts, then tells something, then disconnects: it prints the events seen.
// With "rejoin" it leaves a namespace and uses it again (see below); with
// "namespace" it emits in a namespace, then disconnects it and exits.
'use strict';
const io = require('socket.io-client');
const [url, transport, mode] = [process.argv[2], process.argv[3], process.argv[4]];
const options = {
  'force new connection': true, reconnect: false,
  'connect timeout': 20000, 'try multiple transports': false,
};

// io.connect(target, opts) over `transport` only. (A `transports` option would
// be merged into the client's default list index by index (io.util.merge), so
// ['xhr-polling'] still lists websocket, which the server's order then picks;
// the socket's own list, set before its handshake is answered, is used as is.)
function connect(target, opts) {
  const socket = io.connect(target, opts);
  socket.socket.options.transports = [transport];
  return socket;
}

// A function that prints result() once (then exits), called when the run is
// over or after 40 s; before() runs first (a disconnect, say).
function finisher(result, before) {
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    console.log(JSON.stringify(result()));
    if (before) before();
    setTimeout(() => process.exit(0), 300);
  };
  setTimeout(finish, 40000);
  return finish;
}

if (mode === 'rejoin') {
  // leave a namespace, take it again with io.connect (the same object comes
  // back, and the client sends no 1::/private), and emit there
  const seen = [];
  const url2 = url + '/private?token=ok';
  const finish = finisher(() => ({ seen }));
  // (one connection for both: 'force new connection' would make a new one)
  const shared = Object.assign({}, options, { 'force new connection': false });
  const first = connect(url2, shared);
  first.on('connect_failed', () => { seen.push('connect_failed'); finish(); });
  first.once('connect', () => {
    seen.push('over ' + first.socket.transport.name);
    first.emit('echo', 'before', function (x) {
      seen.push('ack ' + x);
      first.disconnect();
      const again = connect(url2, shared);
      seen.push(again === first ? 'same object' : 'new object');
      again.emit('echo', 'after', function (y) { seen.push('ack ' + y); finish(); });
    });
  });
} else if (mode === 'namespace') {
  // a namespace's socket as apps use one: an emit with an ack, then its
  // disconnect() (0::/private) and the program's exit
  const seen = [];
  const socket = connect(url + '/private?token=ok', options);
  const finish = finisher(() => ({ seen }), () => socket.disconnect());
  socket.on('connect_failed', () => { seen.push('connect_failed'); finish(); });
  socket.on('error', (e) => seen.push('error ' + e));
  socket.once('connect', () => {
    socket.emit('echo', 'in private', function (x) { seen.push('ack ' + x); finish(); });
  });
} else if (mode === 'boot') {
  const seen = [];
  const socket = connect(url + '?boot=1', options);
  const finish = finisher(() => ({ seen }));
  socket.on('connect', () => seen.push('connect over ' + socket.socket.transport.name));
  socket.on('before_boot', (n) => seen.push('before_boot ' + n));
  socket.on('disconnect', (reason) => { seen.push('disconnect ' + reason); finish(); });
  socket.on('error', (e) => seen.push('error ' + e));
  socket.on('connect_failed', () => { seen.push('connect_failed'); finish(); });
} else {
  const result = {
    connected: false, transport: null, ack: null, room: null, answered: null,
    message: null, sendAnswered: null, errors: [],
  };
  const socket = connect(url, options);
  const finish = finisher(() => result, () => socket.disconnect());
  socket.on('error', (e) => result.errors.push(String(e)));
  socket.on('connect_failed', () => { result.errors.push('connect_failed'); finish(); });
  socket.on('question', (q, answer) => answer('node says', q));
  // an app's message listener, as written for Node's server: it takes no ack
  socket.on('message', (m) => { result.message = m; });
  socket.on('send_answered', (answer) => { result.sendAnswered = answer; finish(); });
  socket.on('client_answered', (answer) => {
    result.answered = answer;
    socket.emit('send_asking', 'a message for node');
  });
  socket.on('room_msg', (payload) => {
    result.room = payload;
    socket.emit('ask_client', 'ready?');
  });
  socket.on('connect', () => {
    result.connected = true;
    result.transport = socket.socket.transport.name;
    socket.emit('echo', 'from node', 7, function () {
      result.ack = Array.prototype.slice.call(arguments);
      socket.emit('join', 'nodes');
      socket.emit('to_room', 'nodes', { n: 1 }, true);
    });
  });
}
