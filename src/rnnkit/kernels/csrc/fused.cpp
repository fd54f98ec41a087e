// Compiled sequence kernels for the built-in cells: the whole time loop in C++, with each
// step's element-wise work fused into one pass over the rows (see rnnkit/kernels/ext.py).
//
// Every function mirrors a Python kernel of rnnkit.kernels (elman.py, lstm.py, gru.py),
// which stays the reference: same inputs, same saved state, same masking rules.
//
// Masks: ``mask`` (T, B) bool or None. Step t updates row b when b < rows[t] and
// (t < first_masked or mask[t, b]); else the row carries its state. The output is
// y_t = h_t where b < rows[t] and mask[t, b] (no mask: everywhere), else 0. ``rows`` (T)
// counts the rows that the per-step products touch (a batch sorted by decreasing length:
// the valid rows of a step are its first ones); empty means all B rows at every step.
//
// Layout: xp (T, B, G) and y (T, B, H), or the packed layout of a sorted batch (``index``;
// rnnkit/kernels/packed.py): xp (N, G) and y (N, H) hold only the N valid positions, and step
// t of row b reads and writes row index[t, b] (in training: off_t + b, step order, and what
// is kept for backward is packed the same way).
//
// Per step, the recurrent product is one matrix product (oneDNN with a weight packed once
// per sequence when the caller passes one, else at::mm / at::addmm) and the element-wise
// work is one loop per row, written for the compiler to vectorize: ``exp`` is declared
// with the SIMD variants of glibc's libmvec, so gcc calls its vector exp in these loops.
// tanh is computed as 1 - 2 / (1 + exp(2x)).
//
// Threads: with enough rows the batch is cut into one block of rows per thread, and each
// thread runs its block through the whole sequence (by_rows); smaller batches run as one
// block whose products use torch's threads. Built with -fopenmp, as torch's at::parallel_for
// needs in an extension (without it the region runs on one thread).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

extern "C" {
__attribute__((__simd__("notinbranch"))) float expf(float) noexcept;
__attribute__((__simd__("notinbranch"))) double exp(double) noexcept;
}

// a pragma inside a macro argument (AT_DISPATCH's lambda) must be the _Pragma operator
#define SIMD _Pragma("omp simd")

namespace {

using at::Tensor;
using OptTensor = std::optional<Tensor>;

inline float vexp(float x) { return expf(x); }
inline double vexp(double x) { return exp(x); }
template <typename T>
inline T sigm(T x) { return T(1) / (T(1) + vexp(-x)); }
template <typename T>
inline T tanh_(T x) { return T(1) - T(2) / (T(1) + vexp(x + x)); }

// Small products run without a library call: below these sizes a step's product at::mm
// costs more in dispatch, views and threading checks than in arithmetic (a (1, 128) x
// (128, 384) product: a few microseconds of overhead for 49k multiply-adds).
// (set_direct_max_rows changes the first: 0 turns the direct products off, for the
// benchmark's and the tests' comparisons)
int64_t kDirectMaxRows = 4;
constexpr int64_t kDirectMaxNumel = 1 << 17;

int64_t set_direct_max_rows(int64_t rows) {
  TORCH_CHECK(rows >= 0, "rows: expected >= 0, got ", rows);
  const int64_t before = kDirectMaxRows;
  kDirectMaxRows = rows;
  return before;
}

// x @ wt (+ bias) for x (n, in); wt is (in, out), possibly a transposed view. With
// ``packed`` (oneDNN, float32 on CPU: the same weight packed by _reorder_linear_weight)
// the product runs through mkldnn::_linear_pointwise. With ``direct`` (wt made contiguous
// once per sequence, for batches of at most kDirectMaxRows rows and small weights) the
// kernels call rows_of_w on raw pointers instead (Step, backward_steps): a loop over the
// rows of wt, each scaled by one input and added into the output row, no dispatch.
struct Product {
  Tensor wt;
  OptTensor packed, bias;
  Tensor direct;  // (in, out) contiguous, or undefined

  Tensor operator()(const Tensor& x) const {
    if (packed.has_value()) {
      static const c10::OperatorHandle op =
          c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
      std::vector<c10::IValue> stack;
      stack.reserve(6);
      stack.emplace_back(x);
      stack.emplace_back(*packed);
      stack.emplace_back(bias.has_value() ? c10::IValue(*bias) : c10::IValue());
      stack.emplace_back(std::string("none"));
      stack.emplace_back(c10::List<std::optional<at::Scalar>>());
      stack.emplace_back(c10::IValue());
      op.callBoxed(&stack);
      return stack[0].toTensor().contiguous();
    }
    if (bias.has_value()) return at::addmm(*bias, x, wt);
    return at::mm(x, wt);
  }

  // Whether a product of n rows runs the direct loop (rows_of_w, on raw pointers).
  bool direct_for(int64_t n) const { return direct.defined() && n <= kDirectMaxRows; }
  // The scratch rows_of_w needs per block of rows: kDirectMaxRows rows of the output.
  int64_t scratch_size() const { return direct.defined() ? kDirectMaxRows * direct.size(1) : 0; }

  // y[b] = bias + sum_k x[b, k] wt[k] for n contiguous rows of x: the rows of wt,
  // contiguous, streamed in order (a vectorized multiply-add per row of wt). Returns y.
  template <typename T>
  const T* rows_of_w(const T* x, int64_t n, T* y) const {
    const int64_t in = direct.size(0), out = direct.size(1);
    const T* w = direct.data_ptr<T>();
    const T* bp = bias.has_value() ? bias->data_ptr<T>() : nullptr;
    constexpr int64_t J = 64;  // outputs a block: accumulators that stay in registers
    for (int64_t b = 0; b < n; ++b) {
      const T* xb = x + b * in;
      T* __restrict yb = y + b * out;
      int64_t j0 = 0;
      for (; j0 + J <= out; j0 += J) {
        T acc[J];
        for (int64_t j = 0; j < J; ++j) acc[j] = bp != nullptr ? bp[j0 + j] : T(0);
        for (int64_t k = 0; k < in; ++k) {
          const T v = xb[k];
          const T* __restrict wk = w + k * out + j0;
SIMD
          for (int64_t j = 0; j < J; ++j) acc[j] += v * wk[j];
        }
        std::copy(acc, acc + J, yb + j0);
      }
      if (j0 < out) {  // the last outputs, fewer than J
        const int64_t m = out - j0;
        for (int64_t j = 0; j < m; ++j) yb[j0 + j] = bp != nullptr ? bp[j0 + j] : T(0);
        for (int64_t k = 0; k < in; ++k) {
          const T v = xb[k];
          const T* __restrict wk = w + k * out + j0;
          T* __restrict yj = yb + j0;
SIMD
          for (int64_t j = 0; j < m; ++j) yj[j] += v * wk[j];
        }
      }
    }
    return y;
  }
};

// The product x @ wt (+ bias) for a sequence whose steps have at most ``batch`` rows: the
// direct loop where it is the faster one (float32/float64 CPU tensors, a small batch and
// weight, no packed weight), else torch's.
Product product(const Tensor& wt, const OptTensor& packed, const OptTensor& bias, int64_t batch) {
  Product prod{wt, packed, bias, Tensor()};
  const bool dense = wt.device().is_cpu() && wt.layout() == at::kStrided &&
                     (wt.scalar_type() == at::kFloat || wt.scalar_type() == at::kDouble) &&
                     (!bias.has_value() || bias->is_contiguous());
  if (!packed.has_value() && dense && batch <= kDirectMaxRows && wt.numel() <= kDirectMaxNumel)
    prod.direct = wt.contiguous();
  return prod;
}

struct Masks {
  const bool* m = nullptr;
  int64_t batch, first;
  std::vector<int64_t> rows;
  Tensor keep_alive;

  Masks(const OptTensor& mask, int64_t first_masked, c10::IntArrayRef rows_, int64_t steps,
        int64_t batch_)
      : batch(batch_), first(first_masked), rows(rows_.vec()) {
    if (mask.has_value()) {
      keep_alive = mask->to(at::kBool).contiguous();
      TORCH_CHECK(keep_alive.numel() == steps * batch, "mask: expected (T, B) elements");
      m = keep_alive.data_ptr<bool>();
    }
    if (rows.empty()) rows.assign(steps, batch);
    TORCH_CHECK(static_cast<int64_t>(rows.size()) == steps, "rows: expected T entries");
  }
  bool state(int64_t t, int64_t b) const {
    return b < rows[t] && (t < first || m == nullptr || m[t * batch + b]);
  }
  bool out(int64_t t, int64_t b) const {
    return b < rows[t] && (m == nullptr || m[t * batch + b]);
  }
};

// A block of batch rows [r0, r1) that one task runs through every step of the sequence.
struct Rows {
  int64_t r0, r1;
  // the block's rows that step t's product touches: [r0, r0 + n)
  int64_t valid(const Masks& mk, int64_t t) const {
    return std::clamp<int64_t>(mk.rows[t] - r0, 0, r1 - r0);
  }
};

// Rows a thread at least, for the batch to be split between threads (a smaller batch runs
// as one block, its per-step products on all threads). set_split_min_rows changes it, for
// comparisons (0: never split).
int64_t kSplitMinRows = 16;

int64_t set_split_min_rows(int64_t rows) {
  TORCH_CHECK(rows >= 0, "rows: expected >= 0, got ", rows);
  const int64_t before = kSplitMinRows;
  kSplitMinRows = rows;
  return before;
}

// The blocks of rows that by_rows runs, as cut points 0 = c_0 < c_1 < ... < c_n = B: one
// block per thread when each gets at least kSplitMinRows rows (not inside a parallel
// region), cut so that the blocks' valid steps are balanced (a batch sorted by decreasing
// length has its longest rows first); else the one block [0, B).
std::vector<int64_t> blocks(const Masks& mk) {
  const int64_t B = mk.batch, S = static_cast<int64_t>(mk.rows.size());
  const int64_t n = at::in_parallel_region() || kSplitMinRows == 0
                        ? 1
                        : std::min<int64_t>(at::get_num_threads(), B / kSplitMinRows);
  std::vector<int64_t> cut{0};
  if (n > 1) {
    std::vector<int64_t> work(B, 0);  // the steps row b runs: those with rows[t] > b
    for (int64_t t = 0; t < S; ++t)
      for (int64_t b = 0; b < mk.rows[t]; ++b) ++work[b];
    int64_t total = 0, acc = 0;
    for (int64_t w : work) total += w;
    for (int64_t b = 0; b + 1 < B && static_cast<int64_t>(cut.size()) < n; ++b) {
      acc += work[b];
      if (acc * n >= total * static_cast<int64_t>(cut.size())) cut.push_back(b + 1);
    }
  }
  cut.push_back(B);
  return cut;
}

// Runs body(Rows) over the blocks of rows: each on its own thread, through the whole
// sequence, its per-step products single-threaded (nested in the parallel region). The
// blocks exchange nothing, so the steps need no fork and join: one parallel region per
// sequence, where splitting each step's product and element-wise work costs two a step.
template <typename F>
void by_rows(const Masks& mk, F&& body) {
  const std::vector<int64_t> cut = blocks(mk);
  if (cut.size() == 2) {
    body(Rows{0, mk.batch});
    return;
  }
  const at::ThreadLocalState state;  // grad mode, dispatch keys: as on the calling thread
  at::parallel_for(0, static_cast<int64_t>(cut.size()) - 1, 1, [&](int64_t c0, int64_t c1) {
    at::ThreadLocalStateGuard guard(state);
    for (int64_t c = c0; c < c1; ++c) body(Rows{cut[c], cut[c + 1]});
  });
}

template <typename T>
inline void copy_row(T* dst, const T* src, int64_t n) {
  if (dst != src) std::copy(src, src + n, dst);
}
template <typename T>
inline void zero_row(T* dst, int64_t n) {
  std::fill(dst, dst + n, T(0));
}
// acc += add (rows of one step's gradient sum)
template <typename T>
inline void add_row(T* __restrict acc, const T* __restrict add, int64_t n) {
SIMD
  for (int64_t j = 0; j < n; ++j) acc[j] += add[j];
}

// Where a kernel's per-position tensors keep step t of batch row b. Grid: (T, B, width), row
// off_t + b with off_t = t B. Packed (a batch sorted by decreasing length, only its N valid
// positions, as a PackedSequence's data): (N, width), off_t = rows_0 + ... + rows_{t-1}, and
// only the rows b < rows_t are stored. An inference ``index`` ((T, B) int64) may place the
// positions in any order (the reverse direction reads each row from its own end): step t of
// row b then reads and writes row index[t, b] of xp and y. Training keeps every state: h_0
// (B rows) first, then h_t of row b at row B + off_t + b, so that step t's h_{t-1} start at
// before(t) and its h_t at after(t) (with the grid, hs is (T + 1, B, H) in the same order).
struct Layout {
  int64_t S = 0, B = 0, N = 0;
  bool packed = false;
  std::vector<int64_t> rows, off;
  Tensor index;
  const int64_t* ix = nullptr;

  // a backward kernel's layout: packed or grid, from the forward's rows
  Layout(int64_t steps, int64_t batch, c10::IntArrayRef rows_, bool packed_)
      : S(steps), B(batch), packed(packed_), rows(rows_.vec()) {
    if (rows.empty()) rows.assign(S, B);
    TORCH_CHECK(static_cast<int64_t>(rows.size()) == S, "rows: expected T entries");
    off.resize(S);
    for (int64_t t = 0; t < S; ++t) off[t] = packed ? (t ? off[t - 1] + rows[t - 1] : 0) : t * B;
    N = packed ? (S ? off[S - 1] + rows[S - 1] : 0) : S * B;
  }
  // a forward kernel's: the grid, or with ``index`` the packed rows of xp (N, width)
  static Layout of(const Tensor& xp, const OptTensor& index_, c10::IntArrayRef rows, bool train) {
    if (!index_.has_value()) return Layout(xp.size(0), xp.size(1), rows, false);
    TORCH_CHECK(xp.dim() == 2, "index: xp must be (N, width) with an index");
    TORCH_CHECK(index_->dim() == 2, "index: expected (T, B)");
    TORCH_CHECK(static_cast<int64_t>(rows.size()) == index_->size(0),
                "index: rows must have T entries");
    Layout lay(index_->size(0), index_->size(1), rows, true);
    lay.index = index_->to(at::kLong).contiguous();
    const int64_t* ix = lay.index.data_ptr<int64_t>();
    const int64_t S = lay.S, B = lay.B;
    if (train) {
      TORCH_CHECK(xp.size(0) == lay.N, "index: xp must have sum(rows) = ", lay.N, " rows");
      for (int64_t t = 0; t < S; ++t)  // training reads the positions in step order
        for (int64_t b = 0; b < rows[t]; ++b)
          TORCH_CHECK(ix[t * B + b] == lay.off[t] + b,
                      "index: training takes the packed positions in step order");
      return lay;
    }
    lay.N = xp.size(0);
    for (int64_t t = 0; t < S; ++t)  // every row that a step reads or writes is in xp
      for (int64_t b = 0; b < rows[t]; ++b)
        TORCH_CHECK(ix[t * B + b] >= 0 && ix[t * B + b] < lay.N, "index: row out of range");
    lay.ix = ix;
    return lay;
  }
  int64_t pos(int64_t t, int64_t b) const { return off[t] + b; }
  int64_t before(int64_t t) const { return t ? B + off[t - 1] : 0; }
  int64_t after(int64_t t) const { return B + off[t]; }
  // whether step t of row b has a place in the per-position tensors
  bool stored(int64_t t, int64_t b) const { return !packed || b < rows[t]; }
  // a per-position tensor of this width: (T, B, width) or (N, width)
  Tensor positions(int64_t width, const at::TensorOptions& opt) const {
    return packed ? at::empty({N, width}, opt) : at::empty({S, B, width}, opt);
  }
  // the states a forward kernel keeps (every one in training, else one), h_0 copied in
  Tensor states(const Tensor& h0, bool train) const {
    const int64_t H = h0.size(1);
    Tensor hs = !train ? at::empty({1, B, H}, h0.options())
                : packed ? at::empty({B + N, H}, h0.options())
                         : at::empty({S + 1, B, H}, h0.options());
    hs.view({-1, H}).narrow(0, 0, B).copy_(h0);
    return hs;
  }
  // y: (T, B, H), or (N, H) packed; in packed training the rows of hs that hold h_1 .. h_T
  Tensor output(const Tensor& xp, const Tensor& hs, bool train) const {
    const int64_t H = hs.size(-1);
    if (packed && train) return hs.narrow(0, B, N);
    return packed ? at::empty({N, H}, xp.options()) : at::empty({S, B, H}, xp.options());
  }
  // each row's state after its last step: h_T (grid), or in packed training h at the row's
  // own last step; in inference the one state kept
  Tensor last(const Tensor& hs, bool train) const {
    if (!train) return hs[0].clone();
    if (!packed) return hs[S].clone();
    Tensor rows_at = at::empty({B}, hs.options().dtype(at::kLong));
    int64_t* p = rows_at.data_ptr<int64_t>();
    for (int64_t b = 0, t = S; b < B; ++b) {
      while (t > 0 && rows[t - 1] <= b) --t;  // t: row b's number of steps
      p[b] = t ? after(t - 1) + b : b;
    }
    return hs.index_select(0, rows_at);
  }
};

// What every forward kernel's step t starts from, for a block of rows: the product
// A = h_{t-1} W_hh^T (+ bias) over the block's rows that the step runs (a length-sorted
// batch runs its first rows[t]), row(A, b) its row for batch row b, and pointers into
// h_{t-1}, h_t, x_t (rows of xp's width) and y_t. Training keeps every state (Layout::before
// and after give the rows of hs, flat); inference keeps one state, updated in place (rows
// 0..B-1): k0 and k1 are the first rows of h_{t-1} and h_t in hs. With an inference
// ``index`` (Layout::ix) step t of batch row b reads and writes row index[t, b] of xp and y.
template <typename T>
struct Step {
  int64_t k0, k1, r0, n;
  Tensor a;
  const T *A, *hp, *x;
  const int64_t* ix;  // step t's row of the index, or nullptr (rows off_t + b)
  T *hn, *y;
  // ``scratch``: Product::scratch_size() values, for a direct product (no tensor a step)
  Step(const Product& prod, const Tensor& hs, const Tensor& xp, const Tensor& out,
       const Masks& mk, const Layout& lay, int64_t t, bool train, Rows rows, T* scratch)
      : k0(train ? lay.before(t) : 0),
        k1(train ? lay.after(t) : 0),
        r0(rows.r0),
        n(rows.valid(mk, t)) {
    const int64_t H = hs.size(-1);
    hp = hs.data_ptr<T>() + k0 * H;
    A = nullptr;
    if (n > 0 && prod.direct_for(n)) {
      A = prod.rows_of_w(hp + r0 * H, n, scratch);
    } else if (n > 0) {
      a = prod(hs.view({-1, H}).narrow(0, k0 + r0, n));
      A = a.data_ptr<T>();
    }
    hn = hs.data_ptr<T>() + k1 * H;
    ix = lay.ix == nullptr ? nullptr : lay.ix + t * lay.B;
    x = xp.data_ptr<T>() + (ix ? 0 : lay.off[t] * xp.size(-1));
    y = out.data_ptr<T>() + (ix ? 0 : lay.off[t] * H);
  }
  // row b of A (b in the block, run by the step)
  const T* row(int64_t b, int64_t width) const { return A + (b - r0) * width; }
  // row b of x_t (width: xp's row width)
  const T* input(int64_t b, int64_t width) const { return x + (ix ? ix[b] : b) * width; }
  // row b of y_t: h_t where step t's output is valid, else 0 (packed: no row to write)
  void output(const Masks& mk, int64_t t, int64_t b, int64_t H) const {
    if (mk.out(t, b))
      copy_row(y + (ix ? ix[b] : b) * H, static_cast<const T*>(hn + b * H), H);
    else if (ix == nullptr)
      zero_row(y + b * H, H);
  }
};

// The time loop that every backward kernel shares, run per block of rows (by_rows). At step
// t = T-1 .. 0, row b's carried gradient dh (its row of ``carry``, width H) first receives
// the product of step t+1 (dA_{t+1} W_hh over the rows that step ran) and, where y_t is an
// output, dL/dy_t; then row(t, b, dh, active) does the cell's work: where the step updated
// the row (active) it writes the row of dA_t in da (width G, at Layout::pos) and leaves in dh
// what goes on to h_{t-1}; elsewhere da's row (where stored) is zero here and dh is carried
// past the step. After step 0 the block's last product is added into carry: dL/dh_0.
template <typename T, typename RowFn>
void backward_steps(const Masks& mk, const Layout& lay, const Product& prod, const Tensor& go,
                    const Tensor& da, const Tensor& carry, RowFn&& row) {
  const int64_t S = lay.S, G = da.size(-1), H = carry.size(1);
  const Tensor flat = da.view({-1, G});
  const T* dy = go.data_ptr<T>();
  T* d = da.data_ptr<T>();
  T* dh = carry.data_ptr<T>();
  by_rows(mk, [&](Rows rw) {
    Tensor p;
    std::vector<T> scratch(prod.scratch_size());
    const T* P = nullptr;  // the last product: dA_{t+1} W_hh over the rows it ran
    int64_t np = 0;  // rows of P, from rw.r0
    for (int64_t t = S - 1; t >= 0; --t) {
      for (int64_t b = rw.r0; b < rw.r1; ++b) {
        T* dhb = dh + b * H;
        if (b < rw.r0 + np) add_row(dhb, P + (b - rw.r0) * H, H);
        if (mk.out(t, b)) add_row(dhb, dy + lay.pos(t, b) * H, H);
        const bool active = mk.state(t, b);
        if (!active && lay.stored(t, b)) zero_row(d + lay.pos(t, b) * G, G);
        row(t, b, dhb, active);
      }
      np = rw.valid(mk, t);
      if (np > 0 && prod.direct_for(np)) {
        P = prod.rows_of_w(d + lay.pos(t, rw.r0) * G, np, scratch.data());
      } else if (np > 0) {
        p = prod(flat.narrow(0, lay.pos(t, rw.r0), np));
        P = p.data_ptr<T>();
      }
    }
    for (int64_t b = rw.r0; b < rw.r0 + np; ++b) add_row(dh + b * H, P + (b - rw.r0) * H, H);
  });
}

// --- Elman --------------------------------------------------------------------------------

std::vector<Tensor> elman_forward(const Tensor& xp_, const Tensor& h0, const Tensor& w,
                                  const OptTensor& packed, bool relu, const OptTensor& mask,
                                  int64_t first_masked, c10::IntArrayRef rows, bool train,
                                  const OptTensor& index) {
  const Tensor xp = xp_.contiguous();
  const Layout lay = Layout::of(xp, index, rows, train);
  const int64_t S = lay.S, B = lay.B, H = h0.size(1);
  Masks mk(mask, first_masked, rows, S, B);
  const Product prod = product(w.t(), packed, std::nullopt, B);
  Tensor hs = lay.states(h0, train);
  Tensor y = lay.output(xp, hs, train);
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "elman_forward", [&] {
    using T = scalar_t;
    by_rows(mk, [&](Rows rw) {
      std::vector<T> scratch(prod.scratch_size());
      for (int64_t t = 0; t < S; ++t) {
        const Step<T> st(prod, hs, xp, y, mk, lay, t, train, rw, scratch.data());
        const T* hpp = st.hp;
        T* hnp = st.hn;
        for (int64_t b = rw.r0; b < rw.r1; ++b) {
          if (!lay.stored(t, b)) continue;  // packed: the row has ended
          T* hn = hnp + b * H;
          if (mk.state(t, b)) {
            const T* ab = st.row(b, H);
            const T* xb = st.input(b, H);
            if (relu) {
SIMD
              for (int64_t j = 0; j < H; ++j) {
                const T v = xb[j] + ab[j];
                hn[j] = v > T(0) ? v : T(0);
              }
            } else {
SIMD
              for (int64_t j = 0; j < H; ++j) hn[j] = tanh_(xb[j] + ab[j]);
            }
          } else {
            copy_row(hn, hpp + b * H, H);
          }
          st.output(mk, t, b, H);
        }
      }
    });
  });
  Tensor h_last = lay.last(hs, train);
  if (train) return {y, h_last, hs};
  return {y, h_last};
}

std::vector<Tensor> elman_backward(const Tensor& grad_out, const Tensor& grad_h, const Tensor& hs,
                                   const Tensor& w, const OptTensor& packed_t, bool relu,
                                   const OptTensor& mask, int64_t first_masked,
                                   c10::IntArrayRef rows) {
  const bool packed = hs.dim() == 2;  // (B + N, H): the packed layout (dW_hh by the caller)
  const int64_t B = grad_h.size(0), H = hs.size(-1);
  const Layout lay(packed ? static_cast<int64_t>(rows.size()) : hs.size(0) - 1, B, rows, packed);
  const int64_t S = lay.S;
  Masks mk(mask, first_masked, rows, S, B);
  const Product prod = product(w, packed_t, std::nullopt, B);  // dA @ W_hh
  const Tensor go = grad_out.contiguous();
  Tensor da = lay.positions(H, hs.options());
  Tensor carry = grad_h.contiguous().clone();  // (B, H): dL/dh_t not yet through a step
  AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "elman_backward", [&] {
    using T = scalar_t;
    const T* hsp = hs.data_ptr<T>();
    T* dap = da.data_ptr<T>();
    backward_steps<T>(mk, lay, prod, go, da, carry, [&](int64_t t, int64_t b, T* dh, bool active) {
      if (!active) return;
      const T* hb = hsp + (lay.after(t) + b) * H;  // h_t
      T* db = dap + lay.pos(t, b) * H;
      if (relu) {
SIMD
        for (int64_t j = 0; j < H; ++j) db[j] = hb[j] > T(0) ? dh[j] : T(0);
      } else {
SIMD
        for (int64_t j = 0; j < H; ++j) db[j] = dh[j] * (T(1) - hb[j] * hb[j]);
      }
      zero_row(dh, H);
    });
  });
  if (packed) return {da, carry};
  Tensor dw = da.view({S * B, H}).t().mm(hs.narrow(0, 0, S).reshape({S * B, H}));
  return {da, carry, dw};
}

// --- LSTM ---------------------------------------------------------------------------------
// Saved for backward: hs (T+1, B, H), cs (T+1, B, H), gates (T, B, 4H) as [i f g o] after
// their activations, tcs (T, B, H) = tanh(c_t).

std::vector<Tensor> lstm_forward(const Tensor& xp_, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w, const OptTensor& packed, const OptTensor& mask,
                                 int64_t first_masked, c10::IntArrayRef rows, bool train,
                                 const OptTensor& index) {
  const Tensor xp = xp_.contiguous();
  const Layout lay = Layout::of(xp, index, rows, train);
  const int64_t S = lay.S, B = lay.B, H = h0.size(1), G = 4 * H;
  Masks mk(mask, first_masked, rows, S, B);
  const Product prod = product(w.t(), packed, std::nullopt, B);
  Tensor hs = lay.states(h0, train);
  Tensor cs = lay.states(c0, train);
  Tensor y = lay.output(xp, hs, train);
  Tensor gates = train ? lay.positions(G, xp.options()) : Tensor();
  Tensor tcs = train ? lay.positions(H, xp.options()) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward", [&] {
    using T = scalar_t;
    by_rows(mk, [&](Rows rw) {
      std::vector<T> scratch(prod.scratch_size());
      for (int64_t t = 0; t < S; ++t) {
        const Step<T> st(prod, hs, xp, y, mk, lay, t, train, rw, scratch.data());
        const T* hpp = st.hp;
        T* hnp = st.hn;
        const T* cpp = cs.data_ptr<T>() + st.k0 * H;
        T* cnp = cs.data_ptr<T>() + st.k1 * H;
        T* gp = train ? gates.data_ptr<T>() + lay.off[t] * G : nullptr;
        T* tp = train ? tcs.data_ptr<T>() + lay.off[t] * H : nullptr;
        for (int64_t b = rw.r0; b < rw.r1; ++b) {
          if (!lay.stored(t, b)) continue;  // packed: the row has ended
          T* hn = hnp + b * H;
          T* cn = cnp + b * H;
          if (mk.state(t, b)) {
            const T* ab = st.row(b, G);
            const T* xb = st.input(b, G);
            const T* cb = cpp + b * H;
            if (train) {
              T* gb = gp + b * G;
              T* tb = tp + b * H;
SIMD
              for (int64_t j = 0; j < H; ++j) {
                const T i = sigm(xb[j] + ab[j]);
                const T f = sigm(xb[H + j] + ab[H + j]);
                const T g = tanh_(xb[2 * H + j] + ab[2 * H + j]);
                const T o = sigm(xb[3 * H + j] + ab[3 * H + j]);
                const T c = f * cb[j] + i * g;
                const T tc = tanh_(c);
                gb[j] = i;
                gb[H + j] = f;
                gb[2 * H + j] = g;
                gb[3 * H + j] = o;
                tb[j] = tc;
                cn[j] = c;
                hn[j] = o * tc;
              }
            } else {
SIMD
              for (int64_t j = 0; j < H; ++j) {
                const T i = sigm(xb[j] + ab[j]);
                const T f = sigm(xb[H + j] + ab[H + j]);
                const T g = tanh_(xb[2 * H + j] + ab[2 * H + j]);
                const T o = sigm(xb[3 * H + j] + ab[3 * H + j]);
                const T c = f * cb[j] + i * g;
                cn[j] = c;
                hn[j] = o * tanh_(c);
              }
            }
          } else {
            copy_row(hn, hpp + b * H, H);
            copy_row(cn, cpp + b * H, H);
          }
          st.output(mk, t, b, H);
        }
      }
    });
  });
  Tensor h_last = lay.last(hs, train), c_last = lay.last(cs, train);
  if (train) return {y, h_last, c_last, hs, cs, gates, tcs};
  return {y, h_last, c_last};
}

std::vector<Tensor> lstm_backward(const Tensor& grad_out, const Tensor& grad_h,
                                  const Tensor& grad_c, const Tensor& cs, const Tensor& gates,
                                  const Tensor& tcs, const Tensor& w, const OptTensor& packed_t,
                                  const OptTensor& mask, int64_t first_masked,
                                  c10::IntArrayRef rows) {
  const bool packed = gates.dim() == 2;  // (N, 4H): the packed layout
  const int64_t B = grad_h.size(0), H = cs.size(-1), G = 4 * H;
  const Layout lay(packed ? static_cast<int64_t>(rows.size()) : gates.size(0), B, rows, packed);
  const int64_t S = lay.S;
  Masks mk(mask, first_masked, rows, S, B);
  const Product prod = product(w, packed_t, std::nullopt, B);  // dA @ W_hh
  const Tensor go = grad_out.contiguous();
  Tensor da = lay.positions(G, gates.options());
  Tensor carry_h = grad_h.contiguous().clone();
  Tensor carry_c = grad_c.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward", [&] {
    using T = scalar_t;
    const T *gp = gates.data_ptr<T>(), *tp = tcs.data_ptr<T>(), *cp = cs.data_ptr<T>();
    T* dap = da.data_ptr<T>();
    T* dcp = carry_c.data_ptr<T>();
    backward_steps<T>(mk, lay, prod, go, da, carry_h, [&](int64_t t, int64_t b, T* dh, bool active) {
      if (!active) return;  // dc carried past the step too
      const T* gb = gp + lay.pos(t, b) * G;
      const T* tb = tp + lay.pos(t, b) * H;
      const T* cb = cp + (lay.before(t) + b) * H;  // c_{t-1}
      T* d = dap + lay.pos(t, b) * G;
      T* dc = dcp + b * H;  // dL/dc_t from step t+1
SIMD
      for (int64_t j = 0; j < H; ++j) {
        const T i = gb[j], f = gb[H + j], g = gb[2 * H + j], o = gb[3 * H + j];
        const T tc = tb[j], dhj = dh[j];
        const T dct = dc[j] + dhj * o * (T(1) - tc * tc);
        d[j] = dct * g * (i * (T(1) - i));
        d[H + j] = dct * cb[j] * (f * (T(1) - f));
        d[2 * H + j] = dct * i * (T(1) - g * g);
        d[3 * H + j] = dhj * tc * (o * (T(1) - o));
        dc[j] = dct * f;
        dh[j] = T(0);
      }
    });
  });
  return {da, carry_h, carry_c};
}

// --- GRU ----------------------------------------------------------------------------------
// Saved for backward: hs (T+1, B, H), gates (T, B, 3H) as [r z n], an (T, B, H) the
// n block of W_hh h_{t-1} + b_hh.

std::vector<Tensor> gru_forward(const Tensor& xp_, const Tensor& h0, const Tensor& w,
                                const OptTensor& bias, const OptTensor& packed,
                                const OptTensor& mask, int64_t first_masked,
                                c10::IntArrayRef rows, bool train, const OptTensor& index) {
  const Tensor xp = xp_.contiguous();
  const Layout lay = Layout::of(xp, index, rows, train);
  const int64_t S = lay.S, B = lay.B, H = h0.size(1), G = 3 * H;
  Masks mk(mask, first_masked, rows, S, B);
  const Product prod = product(w.t(), packed, bias, B);
  Tensor hs = lay.states(h0, train);
  Tensor y = lay.output(xp, hs, train);
  Tensor gates = train ? lay.positions(G, xp.options()) : Tensor();
  Tensor an = train ? lay.positions(H, xp.options()) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward", [&] {
    using T = scalar_t;
    by_rows(mk, [&](Rows rw) {
      std::vector<T> scratch(prod.scratch_size());
      for (int64_t t = 0; t < S; ++t) {
        const Step<T> st(prod, hs, xp, y, mk, lay, t, train, rw, scratch.data());
        const T* hpp = st.hp;
        T* hnp = st.hn;
        T* gp = train ? gates.data_ptr<T>() + lay.off[t] * G : nullptr;
        T* anp = train ? an.data_ptr<T>() + lay.off[t] * H : nullptr;
        for (int64_t b = rw.r0; b < rw.r1; ++b) {
          if (!lay.stored(t, b)) continue;  // packed: the row has ended
          T* hn = hnp + b * H;
          const T* hb = hpp + b * H;
          if (mk.state(t, b)) {
            const T* ab = st.row(b, G);
            const T* xb = st.input(b, G);
            if (train) {
              T* gb = gp + b * G;
              T* sb = anp + b * H;
SIMD
              for (int64_t j = 0; j < H; ++j) {
                const T r = sigm(xb[j] + ab[j]);
                const T z = sigm(xb[H + j] + ab[H + j]);
                const T a_n = ab[2 * H + j];
                const T c = tanh_(xb[2 * H + j] + r * a_n);
                gb[j] = r;
                gb[H + j] = z;
                gb[2 * H + j] = c;
                sb[j] = a_n;
                hn[j] = c + z * (hb[j] - c);
              }
            } else {
SIMD
              for (int64_t j = 0; j < H; ++j) {
                const T r = sigm(xb[j] + ab[j]);
                const T z = sigm(xb[H + j] + ab[H + j]);
                const T c = tanh_(xb[2 * H + j] + r * ab[2 * H + j]);
                hn[j] = c + z * (hb[j] - c);
              }
            }
          } else {
            copy_row(hn, hb, H);
          }
          st.output(mk, t, b, H);
        }
      }
    });
  });
  Tensor h_last = lay.last(hs, train);
  if (train) return {y, h_last, hs, gates, an};
  return {y, h_last};
}

std::vector<Tensor> gru_backward(const Tensor& grad_out, const Tensor& grad_h, const Tensor& hs,
                                 const Tensor& gates, const Tensor& an, const Tensor& w,
                                 const OptTensor& packed_t, bool with_bias, const OptTensor& mask,
                                 int64_t first_masked, c10::IntArrayRef rows) {
  const bool packed = hs.dim() == 2;  // (B + N, H): the packed layout
  const int64_t B = grad_h.size(0), H = hs.size(-1), G = 3 * H;
  const Layout lay(packed ? static_cast<int64_t>(rows.size()) : hs.size(0) - 1, B, rows, packed);
  const int64_t S = lay.S;
  Masks mk(mask, first_masked, rows, S, B);
  const Product prod = product(w, packed_t, std::nullopt, B);  // da @ W_hh
  const Tensor go = grad_out.contiguous();
  Tensor da = lay.positions(G, hs.options());  // d(W_hh h_{t-1} + b_hh)
  // dA^n, the n block of dxp = [da^r, da^z, dA^n], which the caller writes over da's n
  // block (da^n = dA^n r) once dW_hh has read it: one (positions, 3H) buffer, not two
  Tensor dn = lay.positions(H, hs.options());
  Tensor carry = grad_h.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "gru_backward", [&] {
    using T = scalar_t;
    const T *gp = gates.data_ptr<T>(), *ap = an.data_ptr<T>(), *hp = hs.data_ptr<T>();
    T* dap = da.data_ptr<T>();
    T* dnp = dn.data_ptr<T>();
    backward_steps<T>(mk, lay, prod, go, da, carry, [&](int64_t t, int64_t b, T* dh, bool active) {
      if (!active) {
        if (lay.stored(t, b)) zero_row(dnp + lay.pos(t, b) * H, H);
        return;
      }
      T* dnb = dnp + lay.pos(t, b) * H;
      const T* gb = gp + lay.pos(t, b) * G;
      const T* sb = ap + lay.pos(t, b) * H;
      const T* hb = hp + (lay.before(t) + b) * H;  // h_{t-1}
      T* d = dap + lay.pos(t, b) * G;
SIMD
      for (int64_t j = 0; j < H; ++j) {
        const T r = gb[j], z = gb[H + j], c = gb[2 * H + j], dhj = dh[j];
        const T direct = dhj * z;
        const T dA = (dhj - direct) * (T(1) - c * c);  // dA^n
        const T dr = dA * sb[j] * (r * (T(1) - r));
        const T dz = dhj * (hb[j] - c) * (z * (T(1) - z));
        d[j] = dr;
        d[H + j] = dz;
        d[2 * H + j] = dA * r;
        dnb[j] = dA;
        dh[j] = direct;
      }
    });
  });
  Tensor db = with_bias ? da.view({-1, G}).sum(0) : Tensor();
  if (with_bias) return {da, carry, dn, db};
  return {da, carry, dn};
}

std::vector<int64_t> row_blocks(int64_t batch, c10::IntArrayRef rows, int64_t steps) {
  return blocks(Masks(std::nullopt, 0, rows, steps, batch));
}

}  // namespace

// Catch-all kernels (no dispatch key: the packed weight is an MkldnnCPU tensor).
TORCH_LIBRARY(rnnkit_fused, m) {
  m.def("row_blocks(int batch, int[] rows, int steps) -> int[]", &row_blocks);
  m.def("set_direct_max_rows(int rows) -> int", &set_direct_max_rows);
  m.def("set_split_min_rows(int rows) -> int", &set_split_min_rows);
  m.def(
      "elman_forward(Tensor xp, Tensor h0, Tensor w, Tensor? packed, bool relu, Tensor? mask, "
      "int first_masked, int[] rows, bool train, Tensor? index=None) -> Tensor[]",
      &elman_forward);
  m.def(
      "elman_backward(Tensor grad_out, Tensor grad_h, Tensor hs, Tensor w, Tensor? packed_t, "
      "bool relu, Tensor? mask, int first_masked, int[] rows) -> Tensor[]",
      &elman_backward);
  m.def(
      "lstm_forward(Tensor xp, Tensor h0, Tensor c0, Tensor w, Tensor? packed, Tensor? mask, "
      "int first_masked, int[] rows, bool train, Tensor? index=None) -> Tensor[]",
      &lstm_forward);
  m.def(
      "lstm_backward(Tensor grad_out, Tensor grad_h, Tensor grad_c, Tensor cs, Tensor gates, "
      "Tensor tcs, Tensor w, Tensor? packed_t, Tensor? mask, int first_masked, int[] rows) "
      "-> Tensor[]",
      &lstm_backward);
  m.def(
      "gru_forward(Tensor xp, Tensor h0, Tensor w, Tensor? bias, Tensor? packed, Tensor? mask, "
      "int first_masked, int[] rows, bool train, Tensor? index=None) -> Tensor[]",
      &gru_forward);
  m.def(
      "gru_backward(Tensor grad_out, Tensor grad_h, Tensor hs, Tensor gates, Tensor an, "
      "Tensor w, Tensor? packed_t, bool with_bias, Tensor? mask, int first_masked, int[] rows) "
      "-> Tensor[]",
      &gru_backward);
}
