#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace shadowtap::replay {

// A mirror's addresses, used in turn by new connections, and per address the
// backoff after failed connects: after a failure no new connect to it for a
// backoff that starts at `initialNs` and doubles up to `maxNs`; a successful
// connect resets it. Connects started in the same round fail together, so only
// the first failure after a backoff ran out lengthens it. Loop thread only.
class AddressBook {
 public:
  AddressBook(std::vector<sockaddr_storage> addrs, uint64_t initialNs, uint64_t maxNs);

  const std::vector<sockaddr_storage>& addrs() const { return addrs_; }
  const sockaddr_storage& at(size_t index) const { return addrs_[index]; }

  // The next address not backing off at `nowNs`, round robin; -1 when all are.
  int pick(uint64_t nowNs);
  // The earliest time an address is free again (nowNs if one is).
  uint64_t nextFreeNs(uint64_t nowNs) const;
  void succeeded(size_t index);
  // Returns the backoff now in force for the address.
  uint64_t failed(size_t index, uint64_t nowNs);

  // Takes a fresh resolution. False (nothing changes) when it is empty or the
  // same set. Addresses still in the list keep their backoff.
  bool replace(std::vector<sockaddr_storage> fresh);
  // Index of `addr` in the list, -1 when it is not there.
  int indexOf(const sockaddr_storage& addr) const;

 private:
  struct State {
    uint64_t retryAtNs = 0;  // no connect before this
    uint64_t backoffNs = 0;  // 0: the last connect succeeded or none failed yet
  };

  std::vector<sockaddr_storage> addrs_;
  std::vector<State> states_;
  uint64_t initialNs_;
  uint64_t maxNs_;
  size_t next_ = 0;
};

bool sameAddress(const sockaddr_storage& a, const sockaddr_storage& b);

}  // namespace shadowtap::replay
