// The classic gevent-socketio chat page, for the /classic namespace (socket.io-client
// 0.9, plain ES5). User text only ever reaches the page through textContent.
(function () {
  'use strict';

  function $(id) { return document.getElementById(id); }

  var status = $('status');

  if (typeof io === 'undefined') {
    status.textContent = 'socket.io-client is missing: run `make run` to fetch it';
    status.className = 'status error';
    return;
  }

  // ?transports=xhr-polling,websocket forces the client's transport list. (Not
  // through io.connect's options: 0.9.16 merges that list into its defaults index by
  // index. The socket is made without connecting, given the list, then connected.)
  var forced = /[?&]transports=([^&]+)/.exec(window.location.search);
  //
  // The connection starts once the page has loaded: over jsonp-polling, 0.9.16 in
  // browsers other than Firefox starts polling at once, and each poll's <script>,
  // held by the server for up to 20 s, would keep the page's load event from firing.
  var socket = io.connect('/classic', {'auto connect': false});
  if (forced) {
    socket.socket.options.transports = decodeURIComponent(forced[1]).split(',');
  }
  if (document.readyState === 'complete') {
    socket.socket.connect();
  } else {
    window.addEventListener('load', function () { socket.socket.connect(); });
  }
  // For the browser console (and the end-to-end test).
  window.classicSocket = socket;

  function line(from, text, className) {
    var li = document.createElement('li');
    if (className) { li.className = className; }
    if (from !== null) {
      var who = document.createElement('b');
      who.className = 'nick';
      who.textContent = from;
      li.appendChild(who);
    }
    var body = document.createElement('span');
    body.className = 'text';
    body.textContent = text;
    li.appendChild(body);
    $('lines').appendChild(li);
    $('lines').scrollTop = $('lines').scrollHeight;
  }

  socket.on('connect', function () {
    status.textContent = 'connected (' + socket.socket.transport.name + ')';
    status.className = 'status connected';
  });
  socket.on('disconnect', function () {
    status.textContent = 'disconnected';
    status.className = 'status error';
  });
  socket.on('reconnecting', function () {
    line('System', 'Attempting to re-connect to the server', 'announcement');
  });

  socket.on('announcement', function (text) {
    line(null, text, 'announcement');
  });

  socket.on('nicknames', function (nicknames) {
    var box = $('nicknames');
    while (box.firstChild) { box.removeChild(box.firstChild); }
    var label = document.createElement('span');
    label.textContent = 'Online: ';
    box.appendChild(label);
    for (var i = 0; i < nicknames.length; i++) {
      var b = document.createElement('b');
      b.className = 'online';
      b.textContent = nicknames[i];
      box.appendChild(b);
      box.appendChild(document.createTextNode(' '));
    }
  });

  socket.on('msg_to_room', function (from, text) {
    line(from, text, 'msg');
  });

  // A plain message from the server (the answer to "Ping").
  socket.on('message', function (text) {
    line('System', text, 'pong');
  });

  // The server's error events carry (name, message); a failed transport gives an object.
  socket.on('error', function (name, message) {
    line('System', typeof name === 'string' ? name + ': ' + (message || '') :
         'A unknown error occurred', 'error');
  });

  $('set-nickname').onsubmit = function (event) {
    event.preventDefault();
    var nick = $('nick').value.replace(/^\s+|\s+$/g, '');
    if (!nick) { return; }
    socket.emit('nickname', nick, function (accepted) {
      if (!accepted) {
        $('nickname-err').hidden = false;
        return;
      }
      $('nickname-err').hidden = true;
      $('nickname').hidden = true;
      $('chat').hidden = false;
      $('message').focus();
    });
  };

  $('send-message').onsubmit = function (event) {
    event.preventDefault();
    var text = $('message').value;
    if (!text) { return; }
    line('me', text, 'mine');
    socket.emit('user message', text);
    $('message').value = '';
    $('message').focus();
  };

  $('ping').onclick = function () {
    socket.send('ping');
  };
}());
