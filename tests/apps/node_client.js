// socket.io-client 0.9.16 as a Node.js program uses it: connect over one
// transport, emit with an ack, join a room and get what is sent to it, answer
// a server's question (callback=), disconnect. Prints one JSON line.
'use strict';
const io = require('socket.io-client');
const [url, transport] = [process.argv[2], process.argv[3]];
const result = { connected: false, transport: null, ack: null, room: null, answered: null, errors: [] };
const socket = io.connect(url, {
  transports: [transport], 'force new connection': true, reconnect: false,
  'connect timeout': 20000, 'try multiple transports': false,
});
let done = false;
function finish() {
  if (done) return;
  done = true;
  console.log(JSON.stringify(result));
  socket.disconnect();
  setTimeout(() => process.exit(0), 300);
}
setTimeout(finish, 40000);
socket.on('error', (e) => result.errors.push(String(e)));
socket.on('connect_failed', () => { result.errors.push('connect_failed'); finish(); });
socket.on('question', (q, answer) => answer('node says', q));
socket.on('client_answered', (answer) => { result.answered = answer; finish(); });
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
