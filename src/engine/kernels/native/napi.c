/*
 * The kernels as a Node-API addon for x86-64 with AVX2 and FMA (scripts/build-wasm.mjs builds
 * it into kernels-x64-avx2.node; ../native-addon.ts loads it). One translation unit: every kernel
 * file is included here, so each call below is checked against the kernel's own definition.
 *
 * JS calls one function, call(index, base, args): kernel `index` of KERNELS (its name is
 * names[index]) with its arguments in a Float64Array, exactly those the wasm export takes, pointers
 * being byte offsets from `base` — the address of the memory they live in (address(view) gives
 * it), taken by the caller per call because tfjs's heap may move when it grows. Offset 0 is the
 * null pointer, as in the wasm modules. Node-API is a stable C ABI: its few functions are declared
 * here, not taken from node's headers, and resolved from the node binary when the addon loads.
 */
#include <stddef.h>
#include <stdint.h>

#include "batch_norm.c"
#include "conv.c"
#include "gelu.c"
#include "layer_norm.c"
#include "optimizer.c"
#include "slice.c"

/* ---------- the Node-API functions this file calls (js_native_api.h) ---------- */

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef int napi_typedarray_type;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);
enum { napi_ok = 0 };

napi_status napi_get_cb_info(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                             napi_value *this_arg, void **data);
napi_status napi_get_value_double(napi_env env, napi_value value, double *result);
napi_status napi_get_value_uint32(napi_env env, napi_value value, uint32_t *result);
napi_status napi_get_typedarray_info(napi_env env, napi_value typedarray, napi_typedarray_type *type, size_t *length,
                                     void **data, napi_value *arraybuffer, size_t *byte_offset);
napi_status napi_create_double(napi_env env, double value, napi_value *result);
napi_status napi_create_string_utf8(napi_env env, const char *str, size_t length, napi_value *result);
napi_status napi_create_array_with_length(napi_env env, size_t length, napi_value *result);
napi_status napi_set_element(napi_env env, napi_value object, uint32_t index, napi_value value);
napi_status napi_create_function(napi_env env, const char *name, size_t length, napi_callback cb, void *data,
                                 napi_value *result);
napi_status napi_set_named_property(napi_env env, napi_value object, const char *name, napi_value value);
napi_status napi_throw_type_error(napi_env env, const char *code, const char *msg);

/* ---------- the kernels by number ---------- */

#define P(i) ((a)[i] == 0 ? (void *)0 : (void *)(base + (uintptr_t)(a)[i]))
#define I(i) ((int)(a)[i])
#define F(i) ((float)(a)[i])

static double call_batch_norm_train(const double *a, __attribute__((unused)) char *base) { batch_norm_train(P(0), P(1), P(2), F(3), P(4), P(5), P(6), I(7), I(8), P(9)); return 0; }
static double call_batch_norm_train_grad(const double *a, __attribute__((unused)) char *base) { batch_norm_train_grad(P(0), P(1), P(2), P(3), P(4), F(5), P(6), P(7), P(8), I(9), I(10), P(11)); return 0; }
static double call_batch_norm_relu6_grad(const double *a, __attribute__((unused)) char *base) { batch_norm_relu6_grad(P(0), P(1), P(2), P(3), P(4), P(5), F(6), P(7), P(8), P(9), I(10), I(11), P(12)); return 0; }
static double call_conv2d_filter_grad_work(const double *a, __attribute__((unused)) char *base) { return conv2d_filter_grad_work(I(0), I(1)); }
static double call_conv2d_filter_grad(const double *a, __attribute__((unused)) char *base) { conv2d_filter_grad(P(0), P(1), P(2), P(3), I(4), I(5), I(6), I(7), I(8), I(9), I(10), I(11), I(12), I(13), I(14), I(15), I(16), I(17), I(18)); return 0; }
static double call_conv2d_input_grad_work(const double *a, __attribute__((unused)) char *base) { return conv2d_input_grad_work(I(0), I(1)); }
static double call_conv2d_input_grad(const double *a, __attribute__((unused)) char *base) { conv2d_input_grad(P(0), P(1), P(2), P(3), I(4), I(5), I(6), I(7), I(8), I(9), I(10), I(11), I(12), I(13), I(14), I(15), I(16), I(17), I(18)); return 0; }
static double call_conv2d_forward_work(const double *a, __attribute__((unused)) char *base) { return conv2d_forward_work(I(0), I(1)); }
static double call_conv2d_forward(const double *a, __attribute__((unused)) char *base) { conv2d_forward(P(0), P(1), P(2), P(3), P(4), I(5), I(6), I(7), I(8), I(9), I(10), I(11), I(12), I(13), I(14), I(15), I(16), I(17), I(18), I(19), I(20)); return 0; }
static double call_depthwise_forward(const double *a, __attribute__((unused)) char *base) { depthwise_forward(P(0), P(1), P(2), I(3), I(4), I(5), I(6), I(7), I(8), I(9), I(10), I(11), I(12), I(13), I(14), I(15), I(16), I(17)); return 0; }
static double call_depthwise_filter_grad(const double *a, __attribute__((unused)) char *base) { depthwise_filter_grad(P(0), P(1), P(2), I(3), I(4), I(5), I(6), I(7), I(8), I(9), I(10), I(11), I(12), I(13), I(14), I(15), I(16), I(17)); return 0; }
static double call_depthwise_input_grad(const double *a, __attribute__((unused)) char *base) { depthwise_input_grad(P(0), P(1), P(2), I(3), I(4), I(5), I(6), I(7), I(8), I(9), I(10), I(11), I(12), I(13), I(14), I(15), I(16), I(17)); return 0; }
static double call_batch_norm(const double *a, __attribute__((unused)) char *base) { batch_norm(P(0), P(1), P(2), P(3), P(4), F(5), P(6), I(7), I(8), P(9)); return 0; }
static double call_binary(const double *a, __attribute__((unused)) char *base) { binary(I(0), P(1), P(2), P(3), I(4), I(5), I(6), I(7)); return 0; }
static double call_max_pool_grad(const double *a, __attribute__((unused)) char *base) { max_pool_grad(P(0), P(1), P(2), I(3), I(4), I(5), I(6), I(7), I(8), I(9), I(10), I(11), I(12), I(13), I(14), I(15), I(16)); return 0; }
static double call_clip_grad(const double *a, __attribute__((unused)) char *base) { clip_grad(P(0), P(1), P(2), I(3), F(4), F(5), I(6)); return 0; }
static double call_batch_matmul_work(const double *a, __attribute__((unused)) char *base) { return batch_matmul_work(I(0), I(1), I(2)); }
static double call_batch_matmul(const double *a, __attribute__((unused)) char *base) { batch_matmul(P(0), P(1), P(2), P(3), I(4), I(5), I(6), I(7), I(8), I(9)); return 0; }
static double call_matmul_part_work(const double *a, __attribute__((unused)) char *base) { return matmul_part_work(I(0), I(1), I(2)); }
static double call_matmul_part(const double *a, __attribute__((unused)) char *base) { matmul_part(P(0), P(1), P(2), P(3), I(4), I(5), I(6), I(7), I(8), I(9), I(10), I(11), I(12), I(13)); return 0; }
static double call_gelu(const double *a, __attribute__((unused)) char *base) { gelu(P(0), P(1), I(2)); return 0; }
static double call_gelu_grad(const double *a, __attribute__((unused)) char *base) { gelu_grad(P(0), P(1), P(2), I(3)); return 0; }
static double call_layer_norm_train(const double *a, __attribute__((unused)) char *base) { layer_norm_train(P(0), P(1), P(2), F(3), P(4), P(5), P(6), I(7), I(8)); return 0; }
static double call_layer_norm_train_grad(const double *a, __attribute__((unused)) char *base) { layer_norm_train_grad(P(0), P(1), P(2), P(3), P(4), P(5), P(6), P(7), I(8), I(9), P(10)); return 0; }
static double call_adam_step(const double *a, __attribute__((unused)) char *base) { adam_step(P(0), P(1), P(2), P(3), P(4), P(5), P(6), I(7), F(8), F(9), F(10), F(11), F(12), F(13), F(14), I(15), F(16), I(17), F(18)); return 0; }
static double call_sgd_step(const double *a, __attribute__((unused)) char *base) { sgd_step(P(0), P(1), P(2), P(3), P(4), I(5), F(6), I(7), F(8), I(9), F(10), I(11)); return 0; }
static double call_slice4(const double *a, __attribute__((unused)) char *base) { slice4(P(0), P(1), I(2), I(3), I(4), I(5), I(6), I(7), I(8), I(9), I(10), I(11), I(12)); return 0; }

#undef P
#undef I
#undef F

static const struct {
  const char *name;
  uint32_t arguments;
  double (*call)(const double *a, char *base);
} KERNELS[] = {
    {"batch_norm_train", 10, call_batch_norm_train},
    {"batch_norm_train_grad", 12, call_batch_norm_train_grad},
    {"batch_norm_relu6_grad", 13, call_batch_norm_relu6_grad},
    {"conv2d_filter_grad_work", 2, call_conv2d_filter_grad_work},
    {"conv2d_filter_grad", 19, call_conv2d_filter_grad},
    {"conv2d_input_grad_work", 2, call_conv2d_input_grad_work},
    {"conv2d_input_grad", 19, call_conv2d_input_grad},
    {"conv2d_forward_work", 2, call_conv2d_forward_work},
    {"conv2d_forward", 21, call_conv2d_forward},
    {"depthwise_forward", 18, call_depthwise_forward},
    {"depthwise_filter_grad", 18, call_depthwise_filter_grad},
    {"depthwise_input_grad", 18, call_depthwise_input_grad},
    {"batch_norm", 10, call_batch_norm},
    {"binary", 8, call_binary},
    {"max_pool_grad", 17, call_max_pool_grad},
    {"clip_grad", 7, call_clip_grad},
    {"batch_matmul_work", 3, call_batch_matmul_work},
    {"batch_matmul", 10, call_batch_matmul},
    {"matmul_part_work", 3, call_matmul_part_work},
    {"matmul_part", 14, call_matmul_part},
    {"gelu", 3, call_gelu},
    {"gelu_grad", 4, call_gelu_grad},
    {"layer_norm_train", 9, call_layer_norm_train},
    {"layer_norm_train_grad", 11, call_layer_norm_train_grad},
    {"adam_step", 19, call_adam_step},
    {"sgd_step", 12, call_sgd_step},
    {"slice4", 13, call_slice4},
};
enum { KERNEL_COUNT = sizeof KERNELS / sizeof KERNELS[0] };

/* call(index, base, args): what the kernel returns (a scratch size), else 0 */
static napi_value call(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t index;
  double base;
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_uint32(env, argv[0], &index) != napi_ok || index >= KERNEL_COUNT ||
      napi_get_value_double(env, argv[1], &base) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &type, &length, &data, NULL, NULL) != napi_ok || type != 8 /* float64 */ ||
      length < KERNELS[index].arguments) {
    napi_throw_type_error(env, NULL, "call(index, base, args): a kernel index, an address and a Float64Array of its arguments");
    return NULL;
  }
  napi_create_double(env, KERNELS[index].call((const double *)data, (char *)(uintptr_t)base), &result);
  return result;
}

/* address(view): where a typed array's first byte is, as a number (x86-64 addresses fit in 53 bits) */
static napi_value address(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value view, result;
  void *data;
  if (napi_get_cb_info(env, info, &argc, &view, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_typedarray_info(env, view, NULL, NULL, &data, NULL, NULL) != napi_ok) {
    napi_throw_type_error(env, NULL, "address(view): a typed array");
    return NULL;
  }
  napi_create_double(env, (double)(uintptr_t)data, &result);
  return result;
}

__attribute__((visibility("default"))) napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value f, names;
  napi_create_function(env, "call", 4, call, NULL, &f);
  napi_set_named_property(env, exports, "call", f);
  napi_create_function(env, "address", 7, address, NULL, &f);
  napi_set_named_property(env, exports, "address", f);
  napi_create_array_with_length(env, KERNEL_COUNT, &names);
  for (uint32_t i = 0; i < KERNEL_COUNT; i++) {
    napi_value name;
    napi_create_string_utf8(env, KERNELS[i].name, (size_t)-1, &name);
    napi_set_element(env, names, i, name);
  }
  napi_set_named_property(env, exports, "names", names);
  return exports;
}
