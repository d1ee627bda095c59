#!/usr/bin/env node
/*
 * The bench's echo + broadcast app on Node.js socket.io 0.9.19 (the reference).
 *
 * Environment: PORT (required), HEARTBEAT_INTERVAL and HEARTBEAT_TIMEOUT (seconds).
 * Listens on 127.0.0.1 only. Events, the same on every server of the bench:
 *   echo(data, ack)   acks with the data it got
 *   bcast(data, ack)  sends `b` with the data to every client, then acks
 * run.py puts bench/.peers/node_modules on NODE_PATH.
 */
'use strict';

const port = Number(process.env.PORT);
if (!port) throw new Error('PORT is required');

const io = require('socket.io').listen(port, '127.0.0.1');
io.set('log level', 0);
io.set('transports', ['websocket', 'xhr-polling']);
io.set('heartbeat interval', Number(process.env.HEARTBEAT_INTERVAL || 25));
io.set('heartbeat timeout', Number(process.env.HEARTBEAT_TIMEOUT || 60));

io.sockets.on('connection', (socket) => {
  socket.on('echo', (data, ack) => {
    if (typeof ack === 'function') ack(data);
  });
  socket.on('bcast', (data, ack) => {
    io.sockets.emit('b', data);
    if (typeof ack === 'function') ack();
  });
});

// run.py stops the server with SIGTERM; leave at once, open connections or not
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
