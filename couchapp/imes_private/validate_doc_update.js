function (newDoc, oldDoc, userCtx, secObj) {
  // The private database (tokens, scrobbler sessions and queue, history) is
  // written by imesd (a server admin) and IMES admins only. Its _security
  // already keeps everyone else out; this is the second lock.
  var roles = userCtx.roles || [];
  if (roles.indexOf('_admin') === -1 && roles.indexOf('imes_admin') === -1) {
    if (!userCtx.name) {
      throw {unauthorized: 'log in as an IMES admin to write to the private database'};
    }
    throw {forbidden: 'only IMES admins and the backend may write to the private database'};
  }
  if (newDoc._deleted) {
    return;
  }
  if (newDoc._id.indexOf('token:') === 0) {
    if (typeof newDoc.token !== 'string' || !/^[0-9a-f]{32,}$/.test(newDoc.token)) {
      throw {forbidden: 'token: must be a string of at least 32 lowercase hex digits'};
    }
  }
}
