/*
 * JPEG references rebuilt from their DCT coefficients, with libjpeg-turbo (the way `jpegtran -copy
 * none -optimize` does): the received file is read into its coefficients and quantisation tables,
 * and a new file is written from them alone. Nothing else of the received file survives: no marker
 * segment, no byte between or after the scans, no table no component uses. The decoded pixels of
 * the new file are those of the received one (same coefficients, same tables, same sampling).
 *
 * sharp's libvips hides its libjpeg symbols, so the worker carries these few hundred lines of
 * Node-API (ABI-stable across Node versions), built by node-gyp at install against the machine's
 * libjpeg-turbo, whose library the release carries beside the addon (RUNPATH $ORIGIN).
 *
 *   inspect(jpeg: Buffer, maxScans: number): Facts         // the header as libjpeg reads it; throws
 *   rebuild(jpeg: Buffer, orientation: 1..8, maxScans: number, maxBytes: number): Promise<Rebuilt>
 *                                         // baseline, standard Huffman tables, one interleaved scan
 *   rebuild(jpeg, 0, maxScans, maxBytes): Promise<{ scans }>   // reads the coefficients only (the
 *                                                                // benchmark's floor)
 *
 * Both refuse (throw / reject with an Error whose `code` is 'EJPEG') on any error and on any warning
 * libjpeg raises: a warning is corrupt data that a decoder papers over. `rebuild` runs on libuv's
 * thread pool, never on the event loop; an orientation other than 1 is applied in the coefficient
 * domain (transpose the block grid and each block, negate the odd coefficients), which is exact only
 * where the edges that move are whole MCUs: the caller checks that (`perfect` in the facts).
 */
#include <node_api.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

/* Errors, warnings and the scan limit all end the read: the first one is kept as the message. */
struct guard {
  struct jpeg_error_mgr pub;
  struct jpeg_progress_mgr progress;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
  int max_scans;
};

static void on_error(j_common_ptr cinfo) {
  struct guard *g = (struct guard *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, g->message);
  longjmp(g->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return; /* trace messages */
  struct guard *g = (struct guard *)cinfo->err;
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  snprintf(g->message, sizeof g->message, "libjpeg warns: %s", text);
  longjmp(g->jump, 1);
}

/* Called before each iMCU row is read: a scan past the limit stops the read before its pass. */
static void on_progress(j_common_ptr cinfo) {
  if (cinfo->is_decompressor) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    struct guard *g = (struct guard *)cinfo->err;
    if (d->input_scan_number > g->max_scans) {
      snprintf(g->message, sizeof g->message, "more than %d scans", g->max_scans);
      longjmp(g->jump, 1);
    }
  }
}

static void guard_init(struct guard *g, int max_scans) {
  memset(g, 0, sizeof *g);
  jpeg_std_error(&g->pub);
  g->pub.error_exit = on_error;
  g->pub.emit_message = on_message;
  g->progress.progress_monitor = on_progress;
  g->max_scans = max_scans;
}

static const char *color_space_name(J_COLOR_SPACE space) {
  switch (space) {
    case JCS_GRAYSCALE: return "grey";
    case JCS_YCbCr: return "ycbcr";
    case JCS_RGB: return "rgb";
    case JCS_CMYK: return "cmyk";
    case JCS_YCCK: return "ycck";
    default: return "unknown";
  }
}

/* ---- orientation in the coefficient domain ---- */

/* EXIF orientation → transpose first, then mirror left-right, then top-bottom (in output axes). */
struct turn {
  int transpose, flip_h, flip_v;
};

static struct turn turn_of(int orientation) {
  switch (orientation) {
    case 2: return (struct turn){0, 1, 0};
    case 3: return (struct turn){0, 1, 1};
    case 4: return (struct turn){0, 0, 1};
    case 5: return (struct turn){1, 0, 0};
    case 6: return (struct turn){1, 1, 0};
    case 7: return (struct turn){1, 1, 1};
    case 8: return (struct turn){1, 0, 1};
    default: return (struct turn){0, 0, 0};
  }
}

static int max_sampling(j_decompress_ptr src, int horizontal) {
  int m = 1;
  for (int ci = 0; ci < src->num_components; ci++) {
    int s = horizontal ? src->comp_info[ci].h_samp_factor : src->comp_info[ci].v_samp_factor;
    if (s > m) m = s;
  }
  return m;
}

/*
 * libjpeg decodes only sampling factors that divide the largest ones ("Fractional sampling not
 * implemented yet"): an image of others could be rebuilt but never read back, so it is refused.
 */
static void refuse_fractional_sampling(j_decompress_ptr src, struct guard *g) {
  int hmax = max_sampling(src, 1), vmax = max_sampling(src, 0);
  for (int ci = 0; ci < src->num_components; ci++) {
    if (hmax % src->comp_info[ci].h_samp_factor || vmax % src->comp_info[ci].v_samp_factor) {
      snprintf(g->message, sizeof g->message, "sampling factors %dx%d of a component do not divide %dx%d", src->comp_info[ci].h_samp_factor,
               src->comp_info[ci].v_samp_factor, hmax, vmax);
      longjmp(g->jump, 1);
    }
  }
}

/*
 * Exact only when each edge that a mirror moves is whole MCUs: a partial MCU's padding would end
 * up on the left or top. The output's width is the input's height when transposed.
 */
static int is_perfect(j_decompress_ptr src, struct turn t) {
  unsigned out_w = t.transpose ? src->image_height : src->image_width;
  unsigned out_h = t.transpose ? src->image_width : src->image_height;
  unsigned mcu_w = 8 * (unsigned)max_sampling(src, !t.transpose);
  unsigned mcu_h = 8 * (unsigned)max_sampling(src, t.transpose);
  return (!t.flip_h || out_w % mcu_w == 0) && (!t.flip_v || out_h % mcu_h == 0);
}

static JDIMENSION round_up(JDIMENSION a, int b) { return (a + (JDIMENSION)b - 1) / (JDIMENSION)b * (JDIMENSION)b; }

/* Bytes of coefficients libjpeg holds for the whole image (one JBLOCK per 8×8 block, MCU-padded). */
static double coefficient_bytes(j_decompress_ptr src) {
  double total = 0;
  for (int ci = 0; ci < src->num_components; ci++) {
    jpeg_component_info *c = &src->comp_info[ci];
    total += (double)round_up(c->width_in_blocks, c->h_samp_factor) * (double)round_up(c->height_in_blocks, c->v_samp_factor) * sizeof(JBLOCK);
  }
  return total;
}

/* out = mirror(transpose(in)) for one block, coefficients in natural (row-major) order. */
static void turn_block(JCOEFPTR out, const JCOEF *in, struct turn t) {
  for (int r = 0; r < DCTSIZE; r++) {
    for (int c = 0; c < DCTSIZE; c++) {
      JCOEF v = t.transpose ? in[c * DCTSIZE + r] : in[r * DCTSIZE + c];
      if ((t.flip_h && (c & 1)) ^ (t.flip_v && (r & 1))) v = (JCOEF)-v;
      out[r * DCTSIZE + c] = v;
    }
  }
}

/*
 * What the standard Huffman tables can code (8-bit, ITU T.81 F.1.2): AC magnitudes up to 1023, DC
 * differences up to 2047 (so DC values in [-1024, 1023]). libjpeg's decoder yields more (arithmetic
 * coding, a sender's DHT with categories 11-15, progressive Al shifts), and its encoder with
 * optimize_coding FALSE writes such values without a check: codes of length 0, or ehufco[r + 16]
 * out of bounds. Checked over the whole padded array that is written.
 */
static int codable(j_common_ptr cinfo, jvirt_barray_ptr array, JDIMENSION w, JDIMENSION h) {
  for (JDIMENSION y = 0; y < h; y++) {
    JBLOCKARRAY row = (*cinfo->mem->access_virt_barray)(cinfo, array, y, 1, FALSE);
    for (JDIMENSION x = 0; x < w; x++) {
      const JCOEF *b = row[0][x];
      if (b[0] < -1024 || b[0] > 1023) return 0;
      for (int k = 1; k < DCTSIZE2; k++) if (b[k] < -1023 || b[k] > 1023) return 0;
    }
  }
  return 1;
}

/* ---- output: a growing buffer with a ceiling ---- */

struct sink {
  struct jpeg_destination_mgr pub;
  unsigned char *data;
  size_t size;
  size_t limit;
};

static void sink_init(j_compress_ptr cinfo) { (void)cinfo; }

static boolean sink_grow(j_compress_ptr cinfo) {
  struct sink *s = (struct sink *)cinfo->dest;
  size_t grown = s->size * 2 > s->limit ? s->limit : s->size * 2;
  if (grown <= s->size) {
    struct guard *g = (struct guard *)cinfo->err;
    snprintf(g->message, sizeof g->message, "the rebuilt image would be larger than %zu bytes", s->limit);
    longjmp(g->jump, 1);
  }
  unsigned char *data = realloc(s->data, grown);
  if (!data) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 10);
  s->pub.next_output_byte = data + s->size;
  s->pub.free_in_buffer = grown - s->size;
  s->data = data;
  s->size = grown;
  return TRUE;
}

static void sink_term(j_compress_ptr cinfo) { (void)cinfo; }

/* ---- the work ---- */

struct job {
  /* in */
  const unsigned char *input;
  size_t input_length;
  int orientation;
  int max_scans;
  size_t max_bytes;
  napi_deferred deferred;
  napi_async_work work;
  /* out */
  int failed;
  char message[JMSG_LENGTH_MAX + 64];
  unsigned char *output;
  size_t output_length;
  unsigned width, height;
  int scans;
};

static void give_up(struct job *job, struct guard *gs, struct guard *gd, j_decompress_ptr src, int src_made, j_compress_ptr dst, int dst_made, struct sink *sink) {
  job->failed = 1;
  snprintf(job->message, sizeof job->message, "%s", gs->message[0] ? gs->message : gd->message);
  if (dst_made) jpeg_destroy_compress(dst);
  if (src_made) jpeg_destroy_decompress(src);
  free(sink->data);
}

static void rebuild_now(struct job *job) {
  struct jpeg_decompress_struct src;
  struct jpeg_compress_struct dst;
  struct guard gs, gd;
  struct sink sink = {0};
  guard_init(&gs, job->max_scans);
  guard_init(&gd, job->max_scans);
  src.err = &gs.pub;
  dst.err = &gd.pub;
  /* volatile: read after a longjmp */
  volatile int src_made = 0, dst_made = 0;

  /* Either object's error lands in one of these (each setjmp the whole controlling expression, as
   * C11 7.13.1.1 requires); the message says which went wrong. */
  if (setjmp(gs.jump)) {
    give_up(job, &gs, &gd, &src, src_made, &dst, dst_made, &sink);
    return;
  }
  if (setjmp(gd.jump)) {
    give_up(job, &gs, &gd, &src, src_made, &dst, dst_made, &sink);
    return;
  }
  jpeg_create_decompress(&src);
  src_made = 1;
  src.progress = &gs.progress;
  jpeg_mem_src(&src, job->input, (unsigned long)job->input_length);
  jpeg_read_header(&src, TRUE);
  refuse_fractional_sampling(&src, &gs);

  struct turn t = turn_of(job->orientation); /* orientation 0: read the coefficients, write nothing */
  if (!is_perfect(&src, t)) {
    snprintf(gs.message, sizeof gs.message, "orientation %d cannot be applied losslessly to %ux%u", job->orientation, src.image_width, src.image_height);
    longjmp(gs.jump, 1);
  }
  /* The turned coefficients, realised with the received ones (before any scan is read). */
  jvirt_barray_ptr turned[MAX_COMPONENTS] = {0};
  int turning = t.transpose || t.flip_h || t.flip_v;
  if (turning) {
    for (int ci = 0; ci < src.num_components; ci++) {
      jpeg_component_info *c = &src.comp_info[ci];
      JDIMENSION w = round_up(c->width_in_blocks, c->h_samp_factor);
      JDIMENSION h = round_up(c->height_in_blocks, c->v_samp_factor);
      turned[ci] = (*src.mem->request_virt_barray)((j_common_ptr)&src, JPOOL_IMAGE, FALSE, t.transpose ? h : w, t.transpose ? w : h,
                                                   (JDIMENSION)(t.transpose ? c->h_samp_factor : c->v_samp_factor));
    }
  }
  jvirt_barray_ptr *received = jpeg_read_coefficients(&src);
  job->scans = src.input_scan_number;
  if (src.input_scan_number > job->max_scans) {
    snprintf(gs.message, sizeof gs.message, "more than %d scans", job->max_scans);
    longjmp(gs.jump, 1);
  }
  if (job->orientation == 0) {
    job->width = src.image_width;
    job->height = src.image_height;
    jpeg_destroy_decompress(&src);
    return;
  }

  if (turning) {
    for (int ci = 0; ci < src.num_components; ci++) {
      jpeg_component_info *c = &src.comp_info[ci];
      JDIMENSION in_w = round_up(c->width_in_blocks, c->h_samp_factor);
      JDIMENSION in_h = round_up(c->height_in_blocks, c->v_samp_factor);
      JDIMENSION out_w = t.transpose ? in_h : in_w, out_h = t.transpose ? in_w : in_h;
      for (JDIMENSION y = 0; y < out_h; y++) {
        JBLOCKARRAY out_row = (*src.mem->access_virt_barray)((j_common_ptr)&src, turned[ci], y, 1, TRUE);
        for (JDIMENSION x = 0; x < out_w; x++) {
          /* The perfect check makes the padded size the real size along every mirrored axis. */
          JDIMENSION px = t.flip_h ? out_w - 1 - x : x, py = t.flip_v ? out_h - 1 - y : y;
          JDIMENSION sx = t.transpose ? py : px, sy = t.transpose ? px : py;
          JBLOCKARRAY in_row = (*src.mem->access_virt_barray)((j_common_ptr)&src, received[ci], sy, 1, FALSE);
          turn_block(out_row[0][x], in_row[0][sx], t);
        }
      }
    }
  }

  for (int ci = 0; ci < src.num_components; ci++) {
    jpeg_component_info *c = &src.comp_info[ci];
    if (!codable((j_common_ptr)&src, received[ci], round_up(c->width_in_blocks, c->h_samp_factor), round_up(c->height_in_blocks, c->v_samp_factor))) {
      snprintf(gs.message, sizeof gs.message, "a DCT coefficient outside the range of 8-bit baseline JPEG");
      longjmp(gs.jump, 1);
    }
  }
  jpeg_create_compress(&dst);
  dst_made = 1;
  sink.limit = job->max_bytes;
  sink.size = job->input_length + 65536 < sink.limit ? job->input_length + 65536 : sink.limit;
  sink.data = malloc(sink.size);
  if (!sink.data) ERREXIT1(&dst, JERR_OUT_OF_MEMORY, 11);
  sink.pub.init_destination = sink_init;
  sink.pub.empty_output_buffer = sink_grow;
  sink.pub.term_destination = sink_term;
  sink.pub.next_output_byte = sink.data;
  sink.pub.free_in_buffer = sink.size;
  dst.dest = &sink.pub;

  jpeg_copy_critical_parameters(&src, &dst);
  if (t.transpose) {
    JDIMENSION w = dst.image_width;
    dst.image_width = dst.image_height;
    dst.image_height = w;
    for (int ci = 0; ci < dst.num_components; ci++) {
      int h = dst.comp_info[ci].h_samp_factor;
      dst.comp_info[ci].h_samp_factor = dst.comp_info[ci].v_samp_factor;
      dst.comp_info[ci].v_samp_factor = h;
    }
    for (int q = 0; q < NUM_QUANT_TBLS; q++) {
      JQUANT_TBL *table = dst.quant_tbl_ptrs[q];
      if (!table) continue;
      for (int r = 0; r < DCTSIZE; r++) {
        for (int c = r + 1; c < DCTSIZE; c++) {
          UINT16 v = table->quantval[r * DCTSIZE + c];
          table->quantval[r * DCTSIZE + c] = table->quantval[c * DCTSIZE + r];
          table->quantval[c * DCTSIZE + r] = v;
        }
      }
    }
  }
  /* Nothing but what the encoder writes of its own: no JFIF or Adobe segment (their fields came
   * from the sender), components named 1..n so any reader takes them for YCbCr or grey. */
  dst.write_JFIF_header = FALSE;
  dst.write_Adobe_marker = FALSE;
  for (int ci = 0; ci < dst.num_components; ci++) dst.comp_info[ci].component_id = ci + 1;
  /* The standard Huffman tables (they code every symbol): optimised ones would save ~6 % of the
   * bytes for 2.4 times the CPU of the whole rebuild (measured: test/bench/image-floor.ts). */
  dst.optimize_coding = FALSE;
  dst.arith_code = FALSE;
  dst.restart_interval = 0;
  dst.restart_in_rows = 0;
  jpeg_write_coefficients(&dst, turning ? turned : received);
  jpeg_finish_compress(&dst);

  job->output = sink.data;
  job->output_length = sink.size - sink.pub.free_in_buffer;
  job->width = dst.image_width;
  job->height = dst.image_height;
  /* jpeg_read_coefficients read on to EOI: bytes after the last MCU were warned of there. */
  jpeg_destroy_compress(&dst);
  jpeg_destroy_decompress(&src);
}

static void execute(napi_env env, void *data) {
  (void)env;
  rebuild_now((struct job *)data);
}

static napi_value jpeg_error(napi_env env, const char *message) {
  napi_value code, text, error;
  napi_create_string_utf8(env, "EJPEG", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  return error;
}

static void free_output(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, object, name, v);
}

static void complete(napi_env env, napi_status status, void *data) {
  struct job *job = data;
  if (status != napi_ok && !job->failed) {
    job->failed = 1;
    snprintf(job->message, sizeof job->message, "the rebuild was cancelled");
  }
  if (job->failed) {
    napi_reject_deferred(env, job->deferred, jpeg_error(env, job->message));
  } else {
    napi_value result, buffer;
    napi_create_object(env, &result);
    /* The encoder's own buffer, handed to JavaScript without a copy; freed with the Buffer. */
    if (job->output && napi_create_external_buffer(env, job->output_length, job->output, free_output, NULL, &buffer) != napi_ok) {
      napi_create_buffer_copy(env, job->output_length, job->output, NULL, &buffer);
      free(job->output);
    }
    if (job->output) napi_set_named_property(env, result, "data", buffer);
    set_number(env, result, "width", job->width);
    set_number(env, result, "height", job->height);
    set_number(env, result, "scans", job->scans);
    napi_resolve_deferred(env, job->deferred, result);
  }
  napi_delete_async_work(env, job->work);
  free((void *)job->input);
  free(job);
}

static int int_arg(napi_env env, napi_value v, int *out) { return napi_get_value_int32(env, v, out) == napi_ok; }

static napi_value Rebuild(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *input = NULL;
  size_t length = 0;
  int orientation = 0, max_scans = 0;
  double max_bytes = 0;
  if (argc != 4 || napi_get_buffer_info(env, argv[0], &input, &length) != napi_ok || !int_arg(env, argv[1], &orientation) ||
      orientation < 0 || orientation > 8 || !int_arg(env, argv[2], &max_scans) || max_scans < 1 ||
      napi_get_value_double(env, argv[3], &max_bytes) != napi_ok || !(max_bytes >= 1024 && max_bytes <= 9007199254740992.0)) {
    napi_throw_type_error(env, NULL, "rebuild(jpeg: Buffer, orientation: 0-8, maxScans: >= 1, maxBytes: 1024 to 2^53)");
    return NULL;
  }
  struct job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  /* Our own copy: the Buffer's memory can be detached (ArrayBuffer.prototype.transfer, a transfer
   * list) or written while the pool thread reads it; a reference keeps only the object alive. */
  unsigned char *copy = malloc(length ? length : 1);
  if (!copy) {
    free(job);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  if (length) memcpy(copy, input, length);
  job->input = copy;
  job->input_length = length;
  job->orientation = orientation;
  job->max_scans = max_scans;
  job->max_bytes = (size_t)max_bytes;
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "enrollment-worker:jpeg-rebuild", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

/* The header as libjpeg reads it: what the frame is, and what decoding it will hold. Cheap. */
static napi_value Inspect(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *input = NULL;
  size_t length = 0;
  int max_scans = 0;
  if (argc != 2 || napi_get_buffer_info(env, argv[0], &input, &length) != napi_ok || !int_arg(env, argv[1], &max_scans) || max_scans < 1) {
    napi_throw_type_error(env, NULL, "inspect(jpeg: Buffer, maxScans: >= 1)");
    return NULL;
  }
  struct jpeg_decompress_struct src;
  struct guard g;
  guard_init(&g, max_scans);
  src.err = &g.pub;
  if (setjmp(g.jump)) {
    jpeg_destroy_decompress(&src);
    napi_throw(env, jpeg_error(env, g.message));
    return NULL;
  }
  jpeg_create_decompress(&src);
  jpeg_mem_src(&src, input, (unsigned long)length);
  jpeg_read_header(&src, TRUE);
  refuse_fractional_sampling(&src, &g);

  napi_value facts, v, sampling;
  napi_create_object(env, &facts);
  set_number(env, facts, "width", src.image_width);
  set_number(env, facts, "height", src.image_height);
  set_number(env, facts, "components", src.num_components);
  set_number(env, facts, "precision", src.data_precision);
  set_number(env, facts, "coefficientBytes", coefficient_bytes(&src));
  napi_get_boolean(env, src.progressive_mode, &v);
  napi_set_named_property(env, facts, "progressive", v);
  napi_get_boolean(env, src.arith_code, &v);
  napi_set_named_property(env, facts, "arithmetic", v);
  napi_create_string_utf8(env, color_space_name(src.jpeg_color_space), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, facts, "colorSpace", v);
  napi_create_array_with_length(env, (size_t)src.num_components, &sampling);
  for (int ci = 0; ci < src.num_components; ci++) {
    napi_value pair, h, vs;
    napi_create_array_with_length(env, 2, &pair);
    napi_create_int32(env, src.comp_info[ci].h_samp_factor, &h);
    napi_create_int32(env, src.comp_info[ci].v_samp_factor, &vs);
    napi_set_element(env, pair, 0, h);
    napi_set_element(env, pair, 1, vs);
    napi_set_element(env, sampling, (uint32_t)ci, pair);
  }
  napi_set_named_property(env, facts, "sampling", sampling);
  /* Which orientations can be applied in the coefficient domain (index 0 is orientation 1). */
  napi_value perfect;
  napi_create_array_with_length(env, 8, &perfect);
  for (int o = 1; o <= 8; o++) {
    napi_get_boolean(env, is_perfect(&src, turn_of(o)), &v);
    napi_set_element(env, perfect, (uint32_t)(o - 1), v);
  }
  napi_set_named_property(env, facts, "perfect", perfect);
  jpeg_destroy_decompress(&src);
  return facts;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"inspect", NULL, Inspect, NULL, NULL, NULL, napi_default, NULL},
      {"rebuild", NULL, Rebuild, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value version;
  napi_create_int32(env, JPEG_LIB_VERSION, &version);
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  napi_set_named_property(env, exports, "libVersion", version);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
