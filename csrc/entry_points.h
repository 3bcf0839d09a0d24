// Torch-facing entry points of each backend, bound by bindings.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace dbf {

// B = sigmoid(k (prob - thresh)); inputs of one shape, dtype and device.
at::Tensor binarize_forward_cpu(const at::Tensor& prob, const at::Tensor& thresh, double k);
// (dL/dprob, dL/dthresh) = (+-) grad * k * B * (1 - B), from the saved output B.
std::tuple<at::Tensor, at::Tensor> binarize_backward_cpu(const at::Tensor& grad,
                                                         const at::Tensor& out, double k);

#ifdef DBF_WITH_CUDA
at::Tensor binarize_forward_cuda(const at::Tensor& prob, const at::Tensor& thresh, double k);
std::tuple<at::Tensor, at::Tensor> binarize_backward_cuda(const at::Tensor& grad,
                                                          const at::Tensor& out, double k);
#endif

// Checks shared by both backends: the C++ side still guards what it indexes.
void check_same_floating(const char* op, const at::Tensor& a, const char* a_name,
                         const at::Tensor& b, const char* b_name);

}  // namespace dbf
