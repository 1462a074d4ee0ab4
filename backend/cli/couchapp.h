/*
 * Design documents kept as folder trees (the couchapp/erica convention), so
 * views, validation and filters are plain .js files that editors and linters
 * understand. `imes init` turns couchapp/<name>/ into _design/<name>:
 *
 *   validate_doc_update.js      -> "validate_doc_update": "<source>"
 *   views/by_type/map.js        -> "views": {"by_type": {"map": "<source>"}}
 *   views/by_type/reduce.js     -> ... "reduce": "_count" (contents, trimmed)
 *   filters/backend.js          -> "filters": {"backend": "<source>"}
 *   options.json                -> "options": <the parsed JSON>
 *   _attachments/app/index.html -> "_attachments": {"app/index.html":
 *                                   {"content_type": "text/html", "data": <base64>}}
 *
 * A file's key is its name without the last extension; .json files hold JSON,
 * all others text (leading and trailing white space dropped). Names starting
 * with '.' and ending in '~' are skipped. "language" defaults to javascript.
 */
#ifndef IMES_COUCHAPP_H
#define IMES_COUCHAPP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Builds _design/<last component of dir> from the tree at dir. Returns a new
 * object, or NULL with err filled ("PATH: what is wrong"). */
json_t *couchapp_load(const char *dir, char *err, size_t errlen);

/* Whether the stored design doc (as GET ...?attachments=true returns it) has
 * the same content as built: _rev and attachment metadata (revpos, digest,
 * length, encoding) are ignored; attachments compare by content_type and data. */
bool couchapp_same(const json_t *built, const json_t *stored);

/* The MIME type for a file name, from its extension ("application/octet-stream"
 * when unknown). */
const char *couchapp_content_type(const char *name);

#endif
