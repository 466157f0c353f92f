/*
 * sd_notify for Node: one datagram to $NOTIFY_SOCKET. Node has no unix datagram sockets, and the
 * prebuilt packages that add them are not published for every platform, so the worker carries
 * these few lines of Node-API (ABI-stable across Node versions), built by node-gyp at install.
 *
 *   send(path: string, message: Buffer): void   // throws on failure
 *
 * A path starting with "@" names an abstract socket (a leading NUL byte on the wire).
 */
#include <errno.h>
#include <node_api.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) {
    napi_throw_type_error(env, NULL, "send(path, message) takes two arguments");
    return NULL;
  }

  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  size_t path_length = 0;
  /* One byte short of sun_path, so a path that fills it is refused rather than truncated. */
  if (napi_get_value_string_utf8(env, argv[0], addr.sun_path, sizeof addr.sun_path, &path_length) != napi_ok ||
      path_length == 0 || path_length >= sizeof addr.sun_path - 1) {
    napi_throw_type_error(env, NULL, "path must be a socket path of 1-106 bytes");
    return NULL;
  }
  socklen_t addr_length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_length);
  if (addr.sun_path[0] == '@') {
    addr.sun_path[0] = '\0';
  } else {
    addr_length += 1; /* the terminating NUL of a filesystem path */
  }

  void *data = NULL;
  size_t length = 0;
  if (napi_get_buffer_info(env, argv[1], &data, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "message must be a Buffer");
    return NULL;
  }

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    napi_throw_error(env, "ESOCKET", strerror(errno));
    return NULL;
  }
  ssize_t sent = sendto(fd, data, length, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_length);
  int error = errno;
  close(fd);
  if (sent < 0) {
    napi_throw_error(env, "ESENDTO", strerror(error));
    return NULL;
  }
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "send", NAPI_AUTO_LENGTH, Send, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "send", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
