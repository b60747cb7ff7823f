/**
 * Float64 dense linear algebra on the host for FID: a symmetric eigendecomposition
 * (Householder tridiagonalisation + implicit QL, the EISPACK tred2/tql2 pair described in
 * Wilkinson & Reinsch, "Handbook for Automatic Computation II", 1971), the square root of a
 * symmetric positive semi-definite matrix and A Bᵀ products (tr(sqrt(S1 S2)) is in
 * trace_sqrt.ts).
 *
 * Matrices are row-major `Float64Array`s of n x n. Internally the eigenvector matrix is kept
 * transposed (one eigenvector per row) so that every inner loop walks memory contiguously.
 *
 * @module
 */

/** Result of {@link symmetricEigen}: values ascending, eigenvectors as columns (row-major). */
export interface Eigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** n x n row-major; column j is the unit eigenvector of `values[j]`. */
  vectors: Float64Array;
}

/** A host or backend routine computing {@link Eigen} of a symmetric n x n matrix. */
export type EighFn = (a: Float64Array, n: number) => Eigen;

/** A host or backend routine computing the eigenvalues (ascending) of a symmetric n x n matrix. */
export type EigvalshFn = (a: Float64Array, n: number) => Float64Array;

/** Throws unless `a` holds n x n values; `what` names the caller in the message. */
export function checkSquare(a: Float64Array, n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || a.length !== n * n) {
    throw new Error(`${what}: expected an ${n}x${n} matrix (${n * n} values), got ${a.length}`);
  }
}

/** sqrt(a^2 + b^2) without overflow; faster than Math.hypot in V8. */
function hypot(a: number, b: number): number {
  const x = Math.abs(a);
  const y = Math.abs(b);
  if (x > y) {
    const r = y / x;
    return x * Math.sqrt(1 + r * r);
  }
  if (y === 0) return 0;
  const r = x / y;
  return y * Math.sqrt(1 + r * r);
}

/**
 * Householder reduction of the symmetric matrix held in `w` to tridiagonal form: on return
 * `d` is the diagonal, `e[1..n-1]` the sub-diagonal, and (when `accumulate`) the rows of `w`
 * hold the orthogonal transformation's columns, i.e. w[j*n+k] = Q[k][j].
 */
function tridiagonalize(
  w: Float64Array,
  n: number,
  d: Float64Array,
  e: Float64Array,
  accumulate: boolean,
): void {
  for (let j = 0; j < n; j++) d[j] = w[j * n + n - 1];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = w[j * n + i - 1];
        w[j * n + i] = 0;
        w[i * n + j] = 0;
      }
    } else {
      // The Householder vector, scaled to avoid under/overflow.
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      // p = A u / h, using the lower triangle (row j of w = column j of the working matrix).
      for (let j = 0; j < i; j++) {
        const row = j * n;
        f = d[j];
        w[i * n + j] = f;
        g = e[j] + w[row + j] * f;
        for (let k = j + 1; k < i; k++) {
          const wjk = w[row + k];
          g += wjk * d[k];
          e[k] += wjk * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      // A <- A - u q^T - q u^T
      for (let j = 0; j < i; j++) {
        const row = j * n;
        f = d[j];
        g = e[j];
        for (let k = j; k < i; k++) w[row + k] -= f * e[k] + g * d[k];
        d[j] = w[row + i - 1];
        w[row + i] = 0;
      }
    }
    d[i] = h;
  }
  if (accumulate) {
    for (let i = 0; i < n - 1; i++) {
      const rowI = i * n;
      const rowNext = (i + 1) * n;
      w[rowI + n - 1] = w[rowI + i];
      w[rowI + i] = 1;
      const h = d[i + 1];
      if (h !== 0) {
        for (let k = 0; k <= i; k++) d[k] = w[rowNext + k] / h;
        for (let j = 0; j <= i; j++) {
          const row = j * n;
          let g = 0;
          for (let k = 0; k <= i; k++) g += w[rowNext + k] * w[row + k];
          for (let k = 0; k <= i; k++) w[row + k] -= g * d[k];
        }
      }
      for (let k = 0; k <= i; k++) w[rowNext + k] = 0;
    }
    for (let j = 0; j < n; j++) {
      d[j] = w[j * n + n - 1];
      w[j * n + n - 1] = 0;
    }
    w[n * n - 1] = 1;
  } else {
    // Without accumulation the tridiagonal's diagonal is left on the working matrix's diagonal.
    for (let j = 0; j < n; j++) d[j] = w[j * n + j];
  }
  e[0] = 0;
}

/**
 * Implicit QL iterations with Wilkinson shifts on the tridiagonal (d, e); rotations are
 * applied to the rows of `w` when given. Leaves the eigenvalues in `d` (unsorted).
 */
function tridiagonalQl(
  n: number,
  d: Float64Array,
  e: Float64Array,
  w: Float64Array | null,
): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = Number.EPSILON;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]) > eps * tst1) m++;
    if (m > l) {
      let iterations = 0;
      do {
        if (++iterations > 60) throw new Error("symmetricEigen: QL iteration did not converge");
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          if (w) {
            const rowA = i * n;
            const rowB = (i + 1) * n;
            for (let k = 0; k < n; k++) {
              const hk = w[rowB + k];
              const ak = w[rowA + k];
              w[rowB + k] = s * ak + c * hk;
              w[rowA + k] = c * ak - s * hk;
            }
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
}

/**
 * Eigenvalues and eigenvectors of a symmetric matrix, in float64 (it must be symmetric: which
 * triangle is read is not part of the contract). Values come out ascending.
 *
 * @example
 * ```ts
 * import { symmetricEigen } from "./linalg.ts";
 * const { values } = symmetricEigen(new Float64Array([2, 1, 1, 2]), 2);
 * console.log(values); // Float64Array [1, 3] (up to rounding)
 * ```
 */
export function symmetricEigen(a: Float64Array, n: number): Eigen {
  checkSquare(a, n, "symmetricEigen");
  const w = reversed(a, n); // symmetric, so a == a^T == the transposed vector store
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tridiagonalize(w, n, d, e, true);
  tridiagonalQl(n, d, e, w);
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[x] - d[y]);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, j) => {
    values[j] = d[src];
    const row = src * n;
    // Component k of the eigenvector is at n-1-k in the reversed basis.
    for (let k = 0; k < n; k++) vectors[k * n + j] = w[row + n - 1 - k];
  });
  return { values, vectors };
}

/**
 * J A J (J the exchange matrix): rows and columns in reverse order. The Householder reduction
 * above starts from the last row, so reversing first makes it start from the first, as LAPACK
 * dsytrd('L') does: a graded matrix whose large entries come first (FID's cross term, built in
 * pivoted-Cholesky order) then keeps its small eigenvalues to high relative accuracy. Reduced
 * from its small end, the 2047 x 2047 steep-spectrum case of fid_exact_test.ts was 2e-7 off.
 */
function reversed(a: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  const last = n * n - 1;
  for (let i = 0; i < n * n; i++) out[i] = a[last - i];
  return out;
}

/**
 * Eigenvalues only of a symmetric matrix (ascending); about a third of the work of
 * {@link symmetricEigen}.
 *
 * @example
 * ```ts
 * import { symmetricEigenvalues } from "./linalg.ts";
 * console.log(symmetricEigenvalues(new Float64Array([2, 0, 0, 1]), 2)); // [1, 2]
 * ```
 */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  checkSquare(a, n, "symmetricEigenvalues");
  const w = reversed(a, n); // see reversed(): the reduction then starts from the first row
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tridiagonalize(w, n, d, e, false);
  tridiagonalQl(n, d, e, null);
  return d.sort();
}

/**
 * Principal square root of a symmetric positive semi-definite matrix, V diag(sqrt(max(l, 0))) Vᵀ:
 * eigenvalues that rounding pushed slightly below zero are clamped to zero.
 *
 * @example
 * ```ts
 * import { sqrtmPsd } from "./linalg.ts";
 * console.log(sqrtmPsd(new Float64Array([4, 0, 0, 9]), 2)); // [2, 0, 0, 3]
 * ```
 */
export function sqrtmPsd(a: Float64Array, n: number, eigh: EighFn = symmetricEigen): Float64Array {
  checkSquare(a, n, "sqrtmPsd");
  const { values, vectors } = eigh(a, n);
  const out = new Float64Array(n * n);
  const root = values.map((v) => Math.sqrt(Math.max(v, 0)));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += vectors[i * n + k] * root[k] * vectors[j * n + k];
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/**
 * C = A Bᵀ for row-major A [rowsA, n] and B [rowsB, n] (every entry a contiguous dot product,
 * computed 2x2 at a time to halve memory traffic). With `symmetric` (A Bᵀ known symmetric,
 * rowsA == rowsB) only the lower triangle is computed and mirrored. `zeroBefore` says that row
 * i of A ("a") or row j of B ("b") is zero before column i (resp. j), as in a triangular
 * factor, so the dot products can start there.
 *
 * @example
 * ```ts
 * import { multiplyABt } from "./linalg.ts";
 * const a = new Float64Array([1, 2, 3, 4]); // [[1, 2], [3, 4]]
 * console.log(multiplyABt(a, 2, a, 2, 2)); // A Aᵀ = [5, 11, 11, 25]
 * ```
 */
export function multiplyABt(
  a: Float64Array,
  rowsA: number,
  b: Float64Array,
  rowsB: number,
  n: number,
  symmetric = false,
  zeroBefore: "a" | "b" | "none" = "none",
): Float64Array {
  const c = new Float64Array(rowsA * rowsB);
  const first = (i: number, j: number) => zeroBefore === "a" ? i : zeroBefore === "b" ? j : 0;
  const dot = (i: number, j: number) => {
    let s = 0;
    const x = i * n;
    const y = j * n;
    for (let k = first(i, j); k < n; k++) s += a[x + k] * b[y + k];
    return s;
  };
  let i = 0;
  for (; i + 1 < rowsA; i += 2) {
    const x0 = i * n;
    const x1 = x0 + n;
    const jEnd = symmetric ? i + 2 : rowsB;
    let j = 0;
    for (; j + 1 < jEnd; j += 2) {
      const y0 = j * n;
      const y1 = y0 + n;
      let s00 = 0;
      let s01 = 0;
      let s10 = 0;
      let s11 = 0;
      for (let k = first(i, j); k < n; k++) {
        const a0 = a[x0 + k];
        const a1 = a[x1 + k];
        const b0 = b[y0 + k];
        const b1 = b[y1 + k];
        s00 += a0 * b0;
        s01 += a0 * b1;
        s10 += a1 * b0;
        s11 += a1 * b1;
      }
      c[i * rowsB + j] = s00;
      c[i * rowsB + j + 1] = s01;
      c[(i + 1) * rowsB + j] = s10;
      c[(i + 1) * rowsB + j + 1] = s11;
    }
    for (; j < jEnd; j++) {
      c[i * rowsB + j] = dot(i, j);
      c[(i + 1) * rowsB + j] = dot(i + 1, j);
    }
  }
  for (; i < rowsA; i++) {
    const jEnd = symmetric ? i + 1 : rowsB;
    for (let j = 0; j < jEnd; j++) c[i * rowsB + j] = dot(i, j);
  }
  if (symmetric) {
    for (let r = 0; r < rowsA; r++) {
      for (let col = r + 1; col < rowsB; col++) c[r * rowsB + col] = c[col * rowsB + r];
    }
  }
  return c;
}
