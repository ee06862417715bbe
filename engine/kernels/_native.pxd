# Per-element functions of the kernels, nogil so loops run without the interpreter lock.
from libc.stdint cimport int32_t, int64_t

cdef int32_t full_years(int32_t birth_days, int32_t service_days) noexcept nogil
cdef void civil_from_days(int64_t z, int64_t* y, int64_t* m, int64_t* d) noexcept nogil
cdef bint contains(const int32_t[:] items, int64_t lo, int64_t hi, int32_t value) noexcept nogil
