#include "model/body_stream.h"

#include <utility>

namespace shadowtap::model {

bool BodyStream::append(const char* data, size_t n) {
  std::lock_guard lock(mu_);
  if (end_ != End::kOpen || cancelled()) {
    return false;
  }
  if (held() + n > window_) {
    end_ = End::kOverflow;
    notifyLocked();
    return false;
  }
  buf_.append(data, n);
  held_.fetch_add(n, std::memory_order_relaxed);
  appended_.fetch_add(n, std::memory_order_relaxed);
  notifyLocked();
  return true;
}

void BodyStream::finish(End how) {
  std::lock_guard lock(mu_);
  if (end_ != End::kOpen) {
    return;
  }
  end_ = how;
  notifyLocked();
}

void BodyStream::notifyLocked() {
  if (waiting_ && listener_) {
    waiting_ = false;
    listener_();
  }
}

void BodyStream::setListener(std::function<void()> listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
}

size_t BodyStream::take(std::string& into) {
  into.clear();
  std::lock_guard lock(mu_);
  buf_.swap(into);
  if (into.empty()) {
    waiting_ = true;
  }
  return into.size();
}

void BodyStream::release(size_t n) { held_.fetch_sub(n, std::memory_order_relaxed); }

BodyStream::End BodyStream::end() const {
  std::lock_guard lock(mu_);
  // An abort is told at once: what is still buffered will not be sent.
  return end_ == End::kComplete && !buf_.empty() ? End::kOpen : end_;
}

void BodyStream::cancel() {
  std::lock_guard lock(mu_);
  cancelled_.store(true, std::memory_order_release);
  listener_ = nullptr;
  std::string().swap(buf_);
}

const char* describe(BodyStream::End end) {
  switch (end) {
    case BodyStream::End::kOpen:
      return "open";
    case BodyStream::End::kComplete:
      return "complete";
    case BodyStream::End::kGap:
      return "gap in the body";
    case BodyStream::End::kIncomplete:
      return "client stream ended before the body";
    case BodyStream::End::kOverflow:
      return "mirror a window behind";
  }
  return "?";
}

}  // namespace shadowtap::model
