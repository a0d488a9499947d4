#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "model/response.h"
#include "http/response_framer.h"
#include "replay/local_endpoints.h"
#include "replay/replay_error.h"
#include "replay/replay_job.h"

namespace shadowtap::replay {

// One non-blocking TCP connection to the mirror carrying at most one request at
// a time: connect, write the whole request, frame the response with llhttp and
// discard it. Owns its socket. Knows nothing of epoll or time; the Replayer
// drives it from readiness events and enforces deadlines.
class MirrorConnection {
 public:
  enum class State {
    kConnecting,  // connect in progress; a job waits on it
    kIdle,        // established, no job; reusable
    kBusy,        // writing a request or reading its response
    kClosed,      // socket closed; to be discarded
  };

  // What one call changed. At most one job outcome per step.
  struct Step {
    bool connected = false;      // the connect completed
    bool connectFailed = false;  // the connect failed (job outcome: kConnect)
    bool requestWritten = false; // the last request byte was written
    uint64_t bytesWritten = 0;
    uint64_t bytesRead = 0;
    bool finished = false;       // the job ended: with a response (status > 0) or with `error`
    int status = 0;
    ReplayError error = ReplayError::kNone;
    int osError = 0;             // errno behind `error`, when there is one
    uint64_t exchangeId = 0;     // of the finished job (compare mode; 0 otherwise)
  };

  // Starts a non-blocking connect that will carry `job`. Returns nullptr and
  // sets `err` (errno) when the socket cannot even be created or the connect
  // fails at once. With `endpoints`, the socket's local endpoint is published
  // there from before the connect until the socket is closed.
  static std::unique_ptr<MirrorConnection> open(const sockaddr_storage& addr, size_t addrIndex,
                                                ReplayJob&& job, size_t maxResponseBytes, int& err,
                                                LocalEndpoints* endpoints = nullptr);
  ~MirrorConnection();
  MirrorConnection(const MirrorConnection&) = delete;
  MirrorConnection& operator=(const MirrorConnection&) = delete;

  // Gives an idle connection its next job and writes as much as the socket takes.
  Step startRequest(ReplayJob&& job);

  // Epoll readiness (EPOLLIN/OUT/ERR/HUP/RDHUP bits). `buf` is scratch space for reads.
  Step onEvents(uint32_t events, std::span<char> buf);

  // Ends the current job with `error` (a deadline passed) and closes.
  Step abort(ReplayError error);

  // Closes without an outcome; returns the job that was waiting or in flight, if any.
  std::optional<ReplayJob> close();

  // Compare mode: jobs with an exchange id get their response framed with a
  // http::ResponseFramer (limits and stats outlive the connection). After a
  // step that finished such a job with a status, takeKeptResponse() returns the
  // response (nullopt when the framer could not read it).
  void keepResponses(const http::ResponseLimits* limits, http::ResponseStats* stats) {
    keepLimits_ = limits;
    keepStats_ = stats;
  }
  std::optional<model::Response> takeKeptResponse();

  int fd() const { return fd_; }
  State state() const { return state_; }
  bool hasJob() const { return job_.has_value(); }
  // True while the socket needs EPOLLOUT (connecting, or a partial write).
  bool wantsWrite() const { return state_ == State::kConnecting || (state_ == State::kBusy && writeOffset_ < jobSize()); }
  size_t addrIndex() const { return addrIndex_; }
  // Re-pointed by the Replayer when the target's address list changes.
  void setAddrIndex(size_t index) { addrIndex_ = index; }
  const sockaddr_storage& remoteAddress() const { return remote_; }
  // The connect succeeded at some point.
  bool established() const { return established_; }

  // Bookkeeping owned by the Replayer: the state's deadline (connect,
  // response or idle; steady clock ns) and the epoll interest registered.
  int64_t deadlineNs = 0;
  uint32_t registeredEvents = 0;
  // When the current request started (steady clock ns), for the latency histogram.
  int64_t requestStartNs = 0;
  // The address left the target's list (DNS changed): close once idle.
  bool retired = false;

 // Response framing state (llhttp); opaque outside the .cc.
  struct Parser;

 private:
  MirrorConnection(int fd, size_t addrIndex, ReplayJob&& job, size_t maxResponseBytes);
  void unpublish();
  size_t jobSize() const { return job_ ? job_->bytes.size() : 0; }
  void beginResponse();
  void writeSome(Step& step);
  void readSome(std::span<char> buf, Step& step);
  void feed(const char* data, size_t len, Step& step);
  void finishOk(Step& step);
  void fail(ReplayError error, Step& step, int osError = 0);
  void closeSocket();

  int fd_ = -1;
  sockaddr_storage remote_{};
  LocalEndpoints* endpoints_ = nullptr;
  LocalEndpoints::Endpoint published_{};
  bool isPublished_ = false;
  State state_ = State::kConnecting;
  size_t addrIndex_ = 0;
  bool established_ = false;
  size_t maxResponseBytes_ = 0;
  std::optional<ReplayJob> job_;
  size_t writeOffset_ = 0;
  size_t responseBytes_ = 0;
  std::unique_ptr<Parser> parser_;

  // Compare mode (see keepResponses). The sink is declared before the framer so
  // the framer, which reports to it when destroyed, goes first.
  class KeptSink final : public http::ResponseSink {
   public:
    void onResponse(uint64_t, model::Response&& response) override { response_ = std::move(response); }
    void onNoResponse(uint64_t, http::NoResponse) override {}
    std::optional<model::Response> response_;
  };
  const http::ResponseLimits* keepLimits_ = nullptr;
  http::ResponseStats* keepStats_ = nullptr;
  KeptSink kept_;
  std::unique_ptr<http::ResponseFramer> framer_;
};

}  // namespace shadowtap::replay
