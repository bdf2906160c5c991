// rz_tap: the few system calls Node cannot make by itself for a Linux TAP port.
//   open(name)                 -> [fd, ifname]   open /dev/net/tun (non-blocking) + TUNSETIFF(IFF_TAP|IFF_NO_PI)
//   read(fd, u8, off, len)     -> bytes | -errno one frame per call; -EAGAIN when none is queued
//   write(fd, u8, off, len)    -> bytes | -errno one frame per call
//   poll(fd, callback)         -> handle         libuv readiness watcher: callback() when readable
//   pollStop(handle)                             stops and frees the watcher (idempotent)
//   close(fd)                  -> 0 | -errno
// Reads and writes never block (the fd is O_NONBLOCK) and never allocate: the caller owns the
// buffers. Errors on the data path are returned as negative errno values, not thrown.
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CHECK(call)                                            \
  do {                                                         \
    if ((call) != napi_ok) {                                   \
      napi_throw_error(env, "ERR_RZ_TAP", "napi call failed"); \
      return NULL;                                             \
    }                                                          \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char* what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char* code = err == EPERM ? "EPERM" : err == EACCES ? "EACCES" : err == ENOENT ? "ENOENT" : err == EBUSY ? "EBUSY" : err == EINVAL ? "EINVAL" : "ERR_RZ_TAP";
  napi_throw_error(env, code, msg);
  return NULL;
}

static napi_value num(napi_env env, int64_t v) {
  napi_value r;
  if (napi_create_int64(env, v, &r) != napi_ok) return NULL;
  return r;
}

static napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ];
  size_t n = 0;
  memset(name, 0, sizeof name);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "open(name): name must be a string");
    return NULL;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, n < IFNAMSIZ - 1 ? n : IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "ioctl TUNSETIFF");
  }
  napi_value out, vfd, vname;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_int32(env, fd, &vfd));
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &vname));
  CHECK(napi_set_element(env, out, 0, vfd));
  CHECK(napi_set_element(env, out, 1, vname));
  return out;
}

// Shared argument decoding of read/write: (fd, Uint8Array, off, len) -> pointer + length.
static int io_args(napi_env env, napi_callback_info info, int* fd, uint8_t** p, size_t* len) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return -EINVAL;
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_value ab;
  size_t byteOffset;
  bool isTa = false;
  if (napi_is_typedarray(env, argv[1], &isTa) != napi_ok || !isTa) return -EINVAL;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, &ab, &byteOffset) != napi_ok || type != napi_uint8_array) return -EINVAL;
  int32_t vfd;
  int64_t off, n;
  if (napi_get_value_int32(env, argv[0], &vfd) != napi_ok) return -EINVAL;
  if (napi_get_value_int64(env, argv[2], &off) != napi_ok || napi_get_value_int64(env, argv[3], &n) != napi_ok) return -EINVAL;
  if (vfd < 0 || off < 0 || n < 0 || (uint64_t)off > length || (uint64_t)n > length - (uint64_t)off) return -EINVAL;
  *fd = vfd;
  *p = (uint8_t*)data + off;
  *len = (size_t)n;
  return 0;
}

static napi_value Read(napi_env env, napi_callback_info info) {
  int fd;
  uint8_t* p;
  size_t len;
  int e = io_args(env, info, &fd, &p, &len);
  if (e < 0) return num(env, e);
  ssize_t r;
  do r = read(fd, p, len);
  while (r < 0 && errno == EINTR);
  return num(env, r < 0 ? -errno : r);
}

static napi_value Write(napi_env env, napi_callback_info info) {
  int fd;
  uint8_t* p;
  size_t len;
  int e = io_args(env, info, &fd, &p, &len);
  if (e < 0) return num(env, e);
  ssize_t r;
  do r = write(fd, p, len);
  while (r < 0 && errno == EINTR);
  return num(env, r < 0 ? -errno : r);
}

static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return num(env, -EINVAL);
  return num(env, close(fd) < 0 ? -errno : 0);
}

// ---------------------------------------------------------------- readiness watcher

typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int active;    // uv_poll started and not stopped
  int closed;    // uv_close completed: libuv no longer uses the memory
  int finalized; // the JS handle was collected: JS no longer uses the memory
} Watcher;

// The Watcher is freed when both libuv and JS are done with it.
static void on_closed(uv_handle_t* h) {
  Watcher* w = (Watcher*)h->data;
  w->closed = 1;
  if (w->finalized) free(w);
}

static void watcher_stop(Watcher* w) {
  if (!w->active) return;
  w->active = 0;
  uv_poll_stop(&w->handle);
  if (w->callback != NULL) napi_delete_reference(w->env, w->callback);
  w->callback = NULL;
  if (w->async != NULL) napi_async_destroy(w->env, w->async);
  w->async = NULL;
  uv_close((uv_handle_t*)&w->handle, on_closed);
}

static void on_readable(uv_poll_t* h, int status, int events) {
  Watcher* w = (Watcher*)h->data;
  if (!w->active) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, status, &arg) == napi_ok) {
    // napi_make_callback runs microtasks afterwards and reports a throw as an uncaught exception.
    napi_make_callback(env, w->async, recv, cb, 1, &arg, NULL);
  }
  napi_close_handle_scope(env, scope);
}

// Runs when the JS handle is collected: a watcher nobody can stop any more is stopped here.
static void watcher_finalize(napi_env env, void* data, void* hint) {
  Watcher* w = (Watcher*)data;
  w->finalized = 1;
  if (w->active) watcher_stop(w); // on_closed frees it
  else if (w->closed) free(w);
}

static napi_value Poll(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "EINVAL", "poll(fd, callback)");
    return NULL;
  }
  uv_loop_t* loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  Watcher* w = (Watcher*)calloc(1, sizeof(Watcher));
  if (w == NULL) return throw_errno(env, ENOMEM, "poll");
  w->env = env;
  int e = uv_poll_init(loop, &w->handle, fd);
  if (e != 0) {
    free(w);
    return throw_errno(env, -e, "uv_poll_init");
  }
  w->handle.data = w;
  napi_value name;
  CHECK(napi_create_string_utf8(env, "rz_tap.poll", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &w->async));
  CHECK(napi_create_reference(env, argv[1], 1, &w->callback));
  w->active = 1;
  e = uv_poll_start(&w->handle, UV_READABLE, on_readable);
  if (e != 0) {
    w->finalized = 1; // no JS handle will exist
    watcher_stop(w);
    return throw_errno(env, -e, "uv_poll_start");
  }
  napi_value ext;
  CHECK(napi_create_external(env, w, watcher_finalize, NULL, &ext));
  return ext;
}

static napi_value PollStop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* data = NULL;
  napi_valuetype t;
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "pollStop(handle)");
    return NULL;
  }
  watcher_stop((Watcher*)data);
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, Open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"read", NULL, Read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"write", NULL, Write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"poll", NULL, Poll, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStop", NULL, PollStop, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
