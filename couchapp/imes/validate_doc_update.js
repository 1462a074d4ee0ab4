function (newDoc, oldDoc, userCtx, secObj) {
  // Who writes what (shared/DESIGN.md, "Data: CouchDB is the control plane").
  // The document type is the _id prefix before the first ':'. imesd logs in as
  // a server admin (role _admin); IMES admins have imes_admin; members have
  // imes_user. Deleting follows the same rules as writing. ES5 only: CouchDB's
  // JavaScript engine may be old.
  var roles = userCtx.roles || [];
  var isBackend = roles.indexOf('_admin') !== -1;
  var isAdmin = isBackend || roles.indexOf('imes_admin') !== -1;
  var isMember = isAdmin || roles.indexOf('imes_user') !== -1;
  var id = newDoc._id;

  // The backend's own documents (tens of thousands in a scan) need no
  // checks: only it may write them, and pouchdb-server runs this function for
  // every document of a _bulk_docs (about 10 % of a scan's write time).
  if (isBackend && /^(file|picture|status|peer):/.test(id)) {
    return;
  }
  if (!userCtx.name && !isBackend) {
    throw {unauthorized: 'log in to write to the IMES database'};
  }
  if (!isMember) {
    throw {forbidden: 'only IMES members may write to the IMES database'};
  }
  if (id.indexOf('_design/') === 0) {
    if (!isAdmin) {
      throw {forbidden: 'only IMES admins may change design documents'};
    }
    return;
  }

  var colon = id.indexOf(':');
  var type = colon > 0 ? id.substring(0, colon) : '';
  var name = colon > 0 ? id.substring(colon + 1) : '';

  var owner = {
    file: 'backend', picture: 'backend', status: 'backend', peer: 'backend',
    device: 'admin', delegate: 'admin',
    channel: 'member', entry: 'member', aggregate: 'member',
    user: 'self'
  };
  var who = owner.hasOwnProperty(type) ? owner[type] : null;

  if (who === null) {
    if (!isAdmin) {
      throw {forbidden: 'unknown document type in _id "' + id + '": only admins may write it'};
    }
    return;
  }
  if (name === '') {
    throw {forbidden: '_id "' + id + '" needs a name after "' + type + ':"'};
  }
  if (who === 'backend' && !isBackend) {
    throw {forbidden: type + ': documents are written by the backend (imesd) only'};
  }
  // A member's personal device (the web app's "Listen here"): device:web-<user>,
  // marked personal, written by that user (or an admin); imesd streams it at
  // /listen/stream.mp3 to that user's session.
  var personalOwner = type === 'device' && name.indexOf('web-') === 0 ? name.substring(4) : null;
  var personalOld = oldDoc && !oldDoc._deleted ? oldDoc : null;
  if (who === 'admin' && !isAdmin) {
    if (personalOwner === null || personalOwner !== userCtx.name) {
      throw {forbidden: type + ': documents are written by IMES admins only' +
                        (type === 'device' ? ' (your personal device is device:web-' + userCtx.name + ')' : '')};
    }
    if (personalOld && personalOld.personal !== true) {
      throw {forbidden: 'device:' + name + ' is a device an admin made, not your personal device'};
    }
    if (!newDoc._deleted && (newDoc.personal !== true || newDoc.owner !== userCtx.name)) {
      throw {forbidden: 'device: your personal device needs "personal": true and "owner": "' + userCtx.name + '"'};
    }
  }
  if (who === 'self' && !isAdmin && userCtx.name !== name) {
    throw {forbidden: 'user:' + name + ' may be written by ' + name + ' or an admin only'};
  }

  // Names (backend/state/docs.h): no ':' and no '~', so ids split one way.
  function isName(v) {
    return typeof v === 'string' && /^[A-Za-z0-9@][A-Za-z0-9._@-]{0,63}$/.test(v);
  }
  var nameRule = 'must be 1 to 64 of letters, digits, . _ - @ (not starting with . _ -)';

  // entry:<playlist>:<uid>; <playlist> is c~<channel> (any member) or
  // u~<user>~<name> (that user or an admin). Checked before a delete too.
  var entry = null;
  if (type === 'entry') {
    entry = /^(c~([^:~]+)|u~([^:~]+)~([^:~]+)):([0-9a-f]{16})$/.exec(name);
    // (An old engine may give '' for a group that did not take part.)
    if (!entry || !(entry[2] ? isName(entry[2]) : isName(entry[3]) && isName(entry[4]))) {
      if (newDoc._deleted) {
        return; // a malformed id from before these rules: let it go
      }
      throw {forbidden: 'entry: _id must be entry:c~<channel>:<uid> or entry:u~<user>~<playlist>:<uid> ' +
                        '(names ' + nameRule + '; uid: 16 lowercase hex digits)'};
    }
    if (entry[3] && !isAdmin && userCtx.name !== entry[3]) {
      throw {forbidden: 'entry: the playlist ' + entry[1] + ' may be changed by ' + entry[3] + ' or an admin only'};
    }
  } else if (who !== 'backend' && !newDoc._deleted && !isName(name)) {
    throw {forbidden: type + ': _id "' + id + '": the name ' + nameRule};
  }

  if (newDoc._deleted) {
    return;
  }

  // Shape checks, for the documents people write. A missing optional field
  // takes its default in imesd; a present one must have the right type.
  function fail(field, what) {
    throw {forbidden: type + ': field "' + field + '" ' + what};
  }
  function has(field) {
    return newDoc.hasOwnProperty(field) && newDoc[field] !== undefined;
  }
  function isString(v) {
    return typeof v === 'string' && v.length > 0;
  }
  function boolean(field) {
    if (has(field) && typeof newDoc[field] !== 'boolean') {
      fail(field, 'must be true or false');
    }
  }
  function number(field, min, max) {
    var v = newDoc[field];
    if (!has(field)) {
      return;
    }
    if (typeof v !== 'number' || isNaN(v) || v < min || (max !== null && v > max)) {
      fail(field, 'must be a number' + (max !== null ? ' from ' + min + ' to ' + max
                                                      : ' of at least ' + min));
    }
  }
  function stringOrNull(field) {
    if (has(field) && newDoc[field] !== null && !isString(newDoc[field])) {
      fail(field, 'must be a non-empty string or null');
    }
  }
  function nameOrNull(field) {
    if (has(field) && newDoc[field] !== null && !isName(newDoc[field])) {
      fail(field, 'must be null or a name (' + nameRule + ')');
    }
  }
  function isNonce(v) {
    return typeof v === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(v);
  }
  // A fractional index key (backend/state/fracindex.h).
  function isKey(k) {
    if (typeof k !== 'string' || k.length === 0 || k.length > 1024 || !/^[0-9A-Za-z]+$/.test(k)) {
      return false;
    }
    var h = k.charAt(0);
    var il = h >= 'a' && h <= 'z' ? h.charCodeAt(0) - 95 : h >= 'A' && h <= 'Z' ? 92 - h.charCodeAt(0) : 0;
    if (il === 0 || il > k.length || (k.length > il && k.charAt(k.length - 1) === '0')) {
      return false;
    }
    return k !== 'A00000000000000000000000000';
  }
  var old = oldDoc && !oldDoc._deleted ? oldDoc : null;
  function oneOf(field, values) {
    if (has(field) && values.indexOf(newDoc[field]) === -1) {
      fail(field, 'must be one of ' + values.join(', '));
    }
  }

  if (has('type') && newDoc.type !== type) {
    fail('type', 'must be "' + type + '" (the _id prefix)');
  }

  if (type === 'channel') {
    boolean('paused');
    oneOf('replaygain', ['album', 'track', 'off']);
    number('crossfade', 0, 10);
    if (has('play') && newDoc.play !== null) {
      var play = newDoc.play;
      if (typeof play !== 'object' || Object.prototype.toString.call(play) === '[object Array]') {
        fail('play', 'must be null or {"entry": ..., "request": ...}');
      }
      var prefix = 'entry:c~' + name + ':';
      if (typeof play.entry !== 'string' || play.entry.indexOf(prefix) !== 0 ||
          !/^[0-9a-f]{16}$/.test(play.entry.substring(prefix.length))) {
        fail('play.entry', 'must be an entry of this channel: ' + prefix + '<uid>');
      }
      if (!isNonce(play.request)) {
        fail('play.request', 'must be a nonce: 1 to 64 of letters, digits, _ -');
      }
    }
    if (has('skip') && newDoc.skip !== null && !isNonce(newDoc.skip)) {
      fail('skip', 'must be null or a nonce: 1 to 64 of letters, digits, _ -');
    }
  } else if (type === 'entry') {
    if (newDoc.playlist !== entry[1]) {
      fail('playlist', 'must be "' + entry[1] + '" (as in the _id)');
    }
    if (typeof newDoc.file !== 'string' || newDoc.file.indexOf('file:') !== 0 ||
        newDoc.file.length < 6 || newDoc.file.length > 128) {
      fail('file', 'must be a file id ("file:...")');
    }
    if (!isKey(newDoc.key)) {
      fail('key', 'must be a fractional index key (base 62, see backend/state/fracindex.h)');
    }
    if (!isString(newDoc.added_by) || newDoc.added_by.length > 64) {
      fail('added_by', 'must be the name of the user who added the entry');
    }
    if (!isString(newDoc.added) || newDoc.added.length > 40) {
      fail('added', 'must be when it was added (ISO 8601)');
    }
    if (!old && !isAdmin && newDoc.added_by !== userCtx.name) {
      fail('added_by', 'must be your own name, ' + userCtx.name);
    }
    if (old && !isBackend) {
      // Moving changes the key only; what was added, by whom and when stays.
      var fixed = ['playlist', 'file', 'added_by', 'added'];
      for (var f = 0; f < fixed.length; f++) {
        if (newDoc[fixed[f]] !== old[fixed[f]]) {
          fail(fixed[f], 'cannot change (move an entry by changing its key; delete it to remove it)');
        }
      }
    }
  } else if (type === 'aggregate') {
    nameOrNull('channel');
  } else if (type === 'user') {
    nameOrNull('aggregate');
    boolean('lockout');
    number('session_timeout', 0, null);
    boolean('scrobbling');
  } else if (type === 'device') {
    nameOrNull('aggregate');
    oneOf('codec', ['mp3', 'opus']);
    boolean('personal');
    if (newDoc.personal === true && (personalOwner === null || newDoc.owner !== personalOwner)) {
      fail('owner', 'must be the user of a personal device, whose _id is device:web-<owner>');
    }
  } else if (type === 'delegate') {
    var d = newDoc.devices;
    var ok = Object.prototype.toString.call(d) === '[object Array]' && d.length <= 256;
    for (var i = 0; ok && i < d.length; i++) {
      ok = isName(d[i]);
    }
    if (!ok) {
      fail('devices', 'must be a list of at most 256 device names');
    }
  }
}
