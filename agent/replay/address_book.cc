#include "replay/address_book.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace shadowtap::replay {

bool sameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  const size_t len = a.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  return a.ss_family == b.ss_family && std::memcmp(&a, &b, len) == 0;
}

AddressBook::AddressBook(std::vector<sockaddr_storage> addrs, uint64_t initialNs, uint64_t maxNs)
    : addrs_(std::move(addrs)), states_(addrs_.size()), initialNs_(initialNs), maxNs_(std::max(initialNs, maxNs)) {}

int AddressBook::pick(uint64_t nowNs) {
  const size_t count = addrs_.size();
  for (size_t i = 0; i < count; ++i) {
    const size_t index = (next_ + i) % count;
    if (states_[index].retryAtNs <= nowNs) {
      next_ = index + 1;
      return static_cast<int>(index);
    }
  }
  return -1;
}

uint64_t AddressBook::nextFreeNs(uint64_t nowNs) const {
  uint64_t next = UINT64_MAX;
  for (const State& s : states_) {
    next = std::min(next, std::max(s.retryAtNs, nowNs));
  }
  return next;
}

void AddressBook::succeeded(size_t index) {
  if (index < states_.size()) {
    states_[index] = State{};
  }
}

uint64_t AddressBook::failed(size_t index, uint64_t nowNs) {
  if (index >= states_.size()) {
    return 0;
  }
  State& s = states_[index];
  if (nowNs >= s.retryAtNs) {
    s.backoffNs = s.backoffNs == 0 ? initialNs_ : std::min(s.backoffNs * 2, maxNs_);
    s.retryAtNs = nowNs + s.backoffNs;
  }
  return s.backoffNs;
}

int AddressBook::indexOf(const sockaddr_storage& addr) const {
  for (size_t i = 0; i < addrs_.size(); ++i) {
    if (sameAddress(addrs_[i], addr)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

bool AddressBook::replace(std::vector<sockaddr_storage> fresh) {
  bool changed = fresh.size() != addrs_.size();
  for (const auto& addr : fresh) {
    changed = changed || indexOf(addr) < 0;
  }
  if (!changed || fresh.empty()) {
    return false;
  }
  std::vector<State> states(fresh.size());
  for (size_t i = 0; i < fresh.size(); ++i) {
    if (const int old = indexOf(fresh[i]); old >= 0) {
      states[i] = states_[static_cast<size_t>(old)];
    }
  }
  addrs_ = std::move(fresh);
  states_ = std::move(states);
  next_ = 0;
  return true;
}

}  // namespace shadowtap::replay
