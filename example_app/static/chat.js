// The chat page, written against the socket.io-client 0.9 API in plain ES5.
// User text only ever reaches the page through textContent.
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
  var socket = io.connect('/chat', {'auto connect': false});
  if (forced) {
    socket.socket.options.transports = decodeURIComponent(forced[1]).split(',');
  }
  if (document.readyState === 'complete') {
    socket.socket.connect();
  } else {
    window.addEventListener('load', function () { socket.socket.connect(); });
  }
  var myNick = null;
  var currentRoom = 'lobby';
  var typers = {};
  // room -> nicknames, as last sent by the server. The list of a room we are joining
  // may arrive before the join's ack does.
  var rosters = {};
  var typingSent = false;
  var typingTimer = null;

  function show(id, visible) { $(id).hidden = !visible; }

  function addLine(className, nick, text) {
    var list = $('messages');
    var li = document.createElement('li');
    if (className) { li.className = className; }
    if (nick !== null) {
      var who = document.createElement('span');
      who.className = 'nick';
      who.textContent = nick;
      li.appendChild(who);
    }
    var body = document.createElement('span');
    body.className = 'text';
    body.textContent = text;
    li.appendChild(body);
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  function renderTypers() {
    var names = [];
    for (var nick in typers) {
      if (typers.hasOwnProperty(nick) && typers[nick]) { names.push(nick); }
    }
    $('typing').textContent = names.length === 0 ? '' :
      names.join(', ') + (names.length === 1 ? ' is' : ' are') + ' typing\u2026';
  }

  function renderRoster() {
    var names = rosters[currentRoom] || [];
    var list = $('nicknames');
    list.textContent = '';
    for (var i = 0; i < names.length; i++) {
      var li = document.createElement('li');
      li.textContent = names[i];
      if (names[i] === myNick) { li.className = 'me'; }
      list.appendChild(li);
    }
  }

  function setTyping(on) {
    if (typingSent !== on) {
      typingSent = on;
      socket.emit('typing', on);
    }
  }

  function chooseNick(nick) {
    socket.emit('nickname', nick, function (ok) {
      if (!ok) {
        $('nick-error').textContent = 'The nickname \u201c' + nick +
          '\u201d is taken or not valid; try another one.';
        show('nick-error', true);
        show('chat-panel', false);
        show('nick-panel', true);
        return;
      }
      myNick = nick;
      show('nick-error', false);
      show('nick-panel', false);
      show('chat-panel', true);
      $('message').focus();
    });
  }

  function joinRoom(room) {
    socket.emit('join', room, function (joined) {
      if (!joined) {
        addLine('announcement error', null, 'Cannot join \u201c' + room + '\u201d: not a valid room name');
        return;
      }
      if (joined !== currentRoom) {
        for (var other in rosters) {
          if (rosters.hasOwnProperty(other) && other !== joined) { delete rosters[other]; }
        }
        currentRoom = joined;
        typers = {};
        renderTypers();
        addLine('announcement', null, 'You are now in ' + joined);
      }
      $('room-name').textContent = joined;
      renderRoster();
    });
  }

  // "connect" fires again after a reconnection, which is a new session on the server:
  // choose the nickname and the room again.
  socket.on('connect', function () {
    status.textContent = 'connected (' + socket.socket.transport.name + ')';
    status.className = 'status';
    if (myNick !== null) {
      var room = currentRoom;
      currentRoom = 'lobby';
      rosters = {};
      chooseNick(myNick);
      if (room !== 'lobby') { joinRoom(room); }
    }
  });
  socket.on('connecting', function (transport) {
    status.textContent = 'connecting (' + transport + ')\u2026';
    status.className = 'status';
  });
  socket.on('reconnecting', function () {
    status.textContent = 'reconnecting\u2026';
    status.className = 'status';
  });
  socket.on('disconnect', function () {
    status.textContent = 'disconnected';
    status.className = 'status error';
    typers = {};
    renderTypers();
  });
  // The reason is a string from the server's error packet, or an event object when a
  // transport failed.
  socket.on('error', function (reason) {
    status.textContent = 'error: ' + (typeof reason === 'string' && reason ? reason : 'cannot connect');
    status.className = 'status error';
  });

  socket.on('announcement', function (text) {
    addLine('announcement', null, text);
  });

  socket.on('nicknames', function (room, names) {
    rosters[room] = names;
    if (room === currentRoom) { renderRoster(); }
  });

  socket.on('user message', function (nick, text) {
    delete typers[nick];
    renderTypers();
    addLine(nick === myNick ? 'mine' : '', nick, text);
  });

  socket.on('typing', function (nick, on) {
    typers[nick] = on;
    renderTypers();
  });

  $('nick-form').onsubmit = function (event) {
    event.preventDefault();
    var nick = $('nick').value.replace(/^\s+|\s+$/g, '');
    if (nick) { chooseNick(nick); }
  };

  $('room-form').onsubmit = function (event) {
    event.preventDefault();
    var room = $('room').value.replace(/^\s+|\s+$/g, '');
    if (room) { joinRoom(room); }
  };

  $('send-form').onsubmit = function (event) {
    event.preventDefault();
    var input = $('message');
    var text = input.value;
    if (!text.replace(/\s+/g, '')) { return; }
    socket.emit('user message', text, function (sent) {
      if (sent) { return; }
      // the server refused it (longer than the page allows, or no nickname yet):
      // say so, and give the text back to edit
      addLine('announcement error', null,
              'Your message was not sent: a message has at most 2000 characters and needs a nickname.');
      if (!input.value) { input.value = text; }
    });
    input.value = '';
    clearTimeout(typingTimer);
    setTyping(false);
  };

  // Typing indicator: on at the first key, off two seconds after the last one.
  $('message').oninput = function () {
    setTyping(true);
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { setTyping(false); }, 2000);
  };
})();
