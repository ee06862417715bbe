# Per-element functions of the kernels, nogil so loops run without the interpreter lock.
from libc.stdint cimport int32_t, int64_t, uint8_t

cdef int32_t full_years(int32_t birth_days, int32_t service_days) noexcept nogil
cdef void civil_from_days(int64_t z, int64_t* y, int64_t* m, int64_t* d) noexcept nogil
cdef bint contains(const int32_t[:] items, int64_t lo, int64_t hi, int32_t value) noexcept nogil

# ---- the family VM (run_family; see twin.run_family for the definition) ----

cdef enum:
    VM_STACK = 64   # slots of the evaluation stack; the compiler refuses deeper programs
    VM_BLOCK = 256  # pairs evaluated together: each instruction is one tight loop over a block

# Every column the programs read, as raw pointers (validated against the program before the loop).
cdef struct VMTables:
    const double** line_f64
    const int32_t** line_i32
    const int64_t** line_i64
    const uint8_t** line_u8
    const double** row_f64
    const int32_t** row_i32
    const uint8_t** row_u8
    const uint8_t** pair_u8
    const double* consts
    const uint8_t** tables
    const int64_t* table_len
    const int32_t** maps
    const int64_t* map_len

# The registers of a block: the selected pairs (pair, line, row) and the stack slots, VM_BLOCK values each.
cdef struct VMBlock:
    int64_t* pair  # selected pair ids (when not dense)
    int64_t* line
    int64_t* row
    int64_t base   # dense: the block's pairs are base, base + 1, ... (no pair ids array)
    bint dense
    double* value  # [slots * VM_BLOCK]
    uint8_t* known
    int32_t* dim

# Half-up to the fen, the same float operations as values.round_money / batch.round_money_vec.
cdef double round_money(double v) noexcept nogil
# Runs a program on the first m selected pairs of the block; the result is in slot 0 (value, known, dim).
cdef void run_block(const int32_t* prog, Py_ssize_t n_instr, const VMTables* t, VMBlock* r,
                    Py_ssize_t m) noexcept nogil
