//! web demo stub
