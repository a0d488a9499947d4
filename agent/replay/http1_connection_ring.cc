// The HTTP/1 connection's path through io_uring (--mirror-io uring|auto):
// once connected, a cleartext connection keeps one receive armed and hands
// each request's bytes to one send; completions come back through the pool's
// ring. A streamed request's body leaves the ring for epoll (leaveRing).
#include <errno.h>
#include <liburing.h>

#include "replay/http1_connection.h"

namespace shadowtap::replay::http1 {

void Http1Connection::enterRing() {
  recvOp_ = new RecvOp();
  recvOp_->owner = this;
  recvOp_->tag = tag_;
  sendOp_ = new SendOp();
  sendOp_->owner = this;
  sendOp_->tag = tag_;
  sendOp_->isSend = true;
  inRing_ = true;
  armRecv();  // also tells an idle connection that the mirror closed it
}

void Http1Connection::armRecv() {
  if (recvOp_ == nullptr || recvOp_->pending()) {
    return;
  }
  io_uring_sqe* sqe = ring_->prepare(*recvOp_);
  io_uring_prep_recv(sqe, socket_.fd(), recvOp_->buf, sizeof(recvOp_->buf), 0);
  sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;  // nothing to read yet: wait for it rather than try first
}

void Http1Connection::ringSend() {
  SendOp& op = *sendOp_;
  io_uring_sqe* sqe = ring_->prepare(op);
  io_uring_prep_send(sqe, socket_.fd(), op.bytes.data() + op.offset, op.bytes.size() - op.offset, MSG_NOSIGNAL);
}

void Http1Connection::onRingSend(int res, uint64_t nowNs) {
  SendOp& op = *sendOp_;
  if (state_ != State::kBusy || !request_ || ringSent_) {
    return;  // the request ended (answered early, or failed) meanwhile
  }
  if (res == -EINTR || res == -EAGAIN) {
    ringSend();
    return;
  }
  if (res <= 0) {
    fail(Outcome::kReset, nowNs);
    return;
  }
  events_.onBytes(static_cast<uint64_t>(res), 0);
  op.offset += static_cast<size_t>(res);
  if (op.offset < op.bytes.size()) {
    ringSend();
    return;
  }
  ringSent_ = true;
  if (!writtenTold_) {
    writtenTold_ = true;
    events_.onRequestWritten();
  }
}

void Http1Connection::onRingRecv(int res, uint64_t nowNs) {
  if (leaving_) {
    leaving_ = false;
    inRing_ = false;
    if (res != -ECANCELED) {
      // Bytes, an EOF or an error came before the cancel: the connection is not usable.
      fail(Outcome::kReset, nowNs);
      return;
    }
    writeSome(nowNs);  // from now on by readiness (the pool watches the socket again)
    return;
  }
  if (state_ == State::kIdle) {
    closeSocket();  // bytes not asked for, an EOF or an error: it cannot be reused
    return;
  }
  if (state_ != State::kBusy) {
    return;
  }
  if (res == -EINTR || res == -EAGAIN) {
    armRecv();
    return;
  }
  if (res < 0) {
    fail(Outcome::kReset, nowNs);
    return;
  }
  if (res == 0) {
    onEof(nowNs);
    return;
  }
  events_.onBytes(0, static_cast<uint64_t>(res));
  responseBytes_ += static_cast<size_t>(res);
  if (responseBytes_ > s_.maxResponseBytes) {
    fail(Outcome::kResponseTooLarge, nowNs);
    return;
  }
  feed(recvOp_->buf, static_cast<size_t>(res), nowNs);
  if (state_ != State::kClosed) {
    armRecv();  // the rest of the response, or an idle connection's close
  }
}

bool Http1Connection::leaveRing() {
  if (recvOp_ != nullptr && recvOp_->pending()) {
    leaving_ = true;
    ring_->cancel(*recvOp_);
    return false;
  }
  inRing_ = false;
  return true;
}

}  // namespace shadowtap::replay::http1
