#include "capture/capture.h"

#include <sys/epoll.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "base/fd.h"
#include "capture/attached_interfaces.h"
#include "capture/capture_metrics.h"
#include "capture/interface_watcher.h"
#include "capture/kernel_support.h"
#include "capture/loader.h"
#include "capture/ring_reader.h"
#include "capture/rule_map_sync.h"
#include "capture/tls_probes.h"

namespace shadowtap::capture {
namespace {

// One epoll set over `fds`, readable when any of them is. Invalid and *error
// set on failure.
base::Fd epollOver(const std::vector<int>& fds, std::string* error) {
  base::Fd epoll(epoll_create1(EPOLL_CLOEXEC));
  for (int fd : fds) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (!epoll.valid() || epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      *error = std::string("cannot set up the capture's event sources: ") + std::strerror(errno);
      return base::Fd();
    }
  }
  return epoll;
}

}  // namespace

// The parts, declared so that they go in reverse: attachments first, the ring
// buffer reader before the programs it reads from.
struct Capture::Impl {
  std::unique_ptr<LoadedProgram> program;
  std::unique_ptr<TlsProbes> tls;  // --tls only; gone after detach()
  bool tlsLoaded = false;          // the TLS programs were loaded: their counters stay (final stats)
  std::unique_ptr<RuleMapSync> rules;
  std::vector<std::unique_ptr<RingReader>> rings;  // one per worker
  std::unique_ptr<InterfaceWatcher> watcher;
  std::unique_ptr<AttachedInterfaces> interfaces;
  base::Fd epoll;
};

Capture::Capture() : impl_(std::make_unique<Impl>()) {}
Capture::~Capture() = default;

std::unique_ptr<Capture> Capture::open(const CaptureOptions& options, std::string* error) {
  // Check names first: a typo should not cost a program load.
  std::string why = InterfaceWatcher::checkNames(options.interfaces, options.tls);
  if (why.empty()) {
    why = checkRingBufferSize(options.ringBufferBytes);
  }
  auto capture = why.empty() ? std::unique_ptr<Capture>(new Capture()) : nullptr;
  if (capture) {
    why = capture->start(options);
  }
  if (!why.empty()) {
    *error = why;
    return nullptr;  // what was attached so far goes with `capture`
  }
  return capture;
}

// Loads the programs, installs the rules, resolves the attach modes, and then
// attaches to every interface there is. Empty on success.
std::string Capture::start(const CaptureOptions& options) {
  Impl& im = *impl_;
  std::string error;
  im.program = LoadedProgram::load(options, &error);
  if (!im.program) {
    return error;
  }
  if (options.tls) {
    im.tls = TlsProbes::open(im.program->xdpShared(), options.tlsLibrary, &error);
    if (!im.tls) {
      return error;
    }
    im.tlsLoaded = true;
  }
  im.rules = std::make_unique<RuleMapSync>(im.program->rulesFd(), im.program->prefixRulesFd());
  if (std::string why = im.rules->replace(options.rules); !why.empty()) {
    return why;
  }
  const std::optional<AttachModes> modes =
      resolveAttachModes(options.attach, im.program->ingressProgFd(), im.program->egressProgFd(), &error);
  if (!modes) {
    return error;
  }
  AttachSettings settings;
  settings.ingressProgFd = im.program->ingressProgFd();
  settings.egressProgFd = im.program->egressProgFd();
  settings.xdp = im.program->xdpShared();
  settings.tcHandle = options.tcHandle;
  settings.tcPriority = options.tcPriority;
  settings.stateDir = options.stateDir;
  im.interfaces = std::make_unique<AttachedInterfaces>(*modes, std::move(settings), stats_);
  im.interfaces->setComparing(anyCompare(options.rules));
  if (std::string why = listen(options); !why.empty()) {
    return why;
  }
  if (std::string why = im.watcher->attachExisting(*im.interfaces); !why.empty()) {
    return why;
  }
  std::lock_guard lock(namesMutex_);
  attachedNames_ = im.interfaces->names();
  return "";
}

// Opens a ring buffer reader per worker and the interface watcher, and the
// epoll sets over them. Empty on success.
std::string Capture::listen(const CaptureOptions& options) {
  Impl& im = *impl_;
  std::string error;
  const PollPacing pacing{options.adaptiveWakeups, options.pollIntervalUs, options.idlePollIntervalUs};
  std::vector<int> all;
  for (uint32_t worker = 0; worker < im.program->workers(); ++worker) {
    im.rings.push_back(RingReader::open(im.program->ringFd(worker), pacing, stats_, &error, options.tls));
    if (!im.rings.back()) {
      return error;
    }
    all.push_back(im.rings.back()->ringFd());
    all.push_back(im.rings.back()->timerFd());
  }
  // Subscribe before listing, so an interface appearing in between is not missed.
  im.watcher = std::make_unique<InterfaceWatcher>(options.interfaces, stats_);
  if (std::string why = im.watcher->open(); !why.empty()) {
    return why;
  }
  all.push_back(im.watcher->fd());
  im.epoll = epollOver(all, &error);
  return error;
}

int Capture::fd() const { return impl_->epoll.get(); }

int Capture::consume(SegmentSink& sink) {
  followInterfaces();
  int n = 0;
  for (auto& ring : impl_->rings) {
    n = addConsumed(n, ring->consume(sink));  // an error is not summed with a later ring's records
  }
  return n;
}

int Capture::interfacesFd() const { return impl_->watcher->fd(); }

bool Capture::followInterfaces() {
  if (!impl_->watcher->follow(*impl_->interfaces)) {
    return false;
  }
  std::lock_guard lock(namesMutex_);
  attachedNames_ = impl_->interfaces->names();
  return true;
}

std::vector<std::string> Capture::attachedInterfaces() const {
  std::lock_guard lock(namesMutex_);
  return attachedNames_;
}

uint32_t Capture::workers() const { return static_cast<uint32_t>(impl_->rings.size()); }
RingReader& Capture::ring(uint32_t worker) { return *impl_->rings.at(worker); }
WorkerFeed& Capture::feed(uint32_t worker) { return ring(worker); }

void Capture::exportStats(bool egress, base::StatsSink& out) const {
  const size_t attached = attachedInterfaces().size();
  capture::exportStats(kernelCounters(), stats_, attached, egress, out);
}

AttachMode Capture::attachMode() const { return impl_->interfaces->modes().ingress; }
AttachMode Capture::egressMode() const { return impl_->interfaces->modes().egress; }
bool Capture::egressAttached() const { return impl_->interfaces->egressAttached(); }

KernelCounters Capture::kernelCounters() const {
  KernelCounters k = impl_->program->counters();
  k.tls = impl_->tlsLoaded;
  return k;
}

std::string Capture::tlsLibrary() const { return impl_->tls ? impl_->tls->library() : std::string(); }

void Capture::detach() {
  impl_->tls.reset();  // the uprobes first: no plaintext comes in after this
  impl_->watcher->stop();
  impl_->interfaces->clear();
  std::lock_guard lock(namesMutex_);
  attachedNames_.clear();
}

std::string Capture::updateRules(const std::vector<PortRule>& rules) {
  AttachedInterfaces& interfaces = *impl_->interfaces;
  const bool compare = anyCompare(rules);
  const bool startEgress = compare && !interfaces.comparing();
  // Egress hooks first, so that the new compare rules see their responses from
  // the first request on; all or nothing.
  if (startEgress) {
    if (std::string why = interfaces.attachEgressEverywhere(); !why.empty()) {
      return why;
    }
  }
  if (std::string why = impl_->rules->replace(rules); !why.empty()) {
    if (startEgress) {
      interfaces.detachEgressEverywhere();
    }
    return why;
  }
  if (!compare) {
    interfaces.detachEgressEverywhere();  // no rule compares any more: the egress path costs nothing again
  }
  interfaces.setComparing(compare);
  return "";
}

}  // namespace shadowtap::capture
