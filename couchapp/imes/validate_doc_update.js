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
  if (who === 'admin' && !isAdmin) {
    throw {forbidden: type + ': documents are written by IMES admins only'};
  }
  if (who === 'self' && !isAdmin && userCtx.name !== name) {
    throw {forbidden: 'user:' + name + ' may be written by ' + name + ' or an admin only'};
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
  } else if (type === 'entry') {
    if (name.indexOf(':') <= 0 || name.indexOf(':') === name.length - 1) {
      throw {forbidden: 'entry: _id must be entry:<playlist>:<key>'};
    }
    if (!isString(newDoc.file)) {
      fail('file', 'must be a non-empty string (the file id)');
    }
    if (!isString(newDoc.key)) {
      fail('key', 'must be a non-empty string (the sort key)');
    }
  } else if (type === 'aggregate') {
    stringOrNull('channel');
  } else if (type === 'user') {
    stringOrNull('aggregate');
    boolean('lockout');
    number('session_timeout', 0, null);
    boolean('scrobbling');
  } else if (type === 'device') {
    stringOrNull('aggregate');
    oneOf('codec', ['mp3', 'opus']);
  } else if (type === 'delegate') {
    var d = newDoc.devices;
    var ok = Object.prototype.toString.call(d) === '[object Array]';
    for (var i = 0; ok && i < d.length; i++) {
      ok = isString(d[i]);
    }
    if (!ok) {
      fail('devices', 'must be a list of device names');
    }
  }
}
