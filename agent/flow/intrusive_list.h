#pragma once

#include <cassert>
#include <cstddef>

namespace shadowtap::flow::detail {

// A doubly linked list threaded through two pointer members of T, so that moving
// a flow to the front of the LRU or unlinking it never allocates. The list does
// not own its nodes; a node is in at most one list per pair of links.
template <typename T, T* T::*Prev, T* T::*Next>
class IntrusiveList {
 public:
  T* front() const { return head_; }
  T* back() const { return tail_; }
  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  static T* next(const T* node) { return node->*Next; }

  void pushFront(T* node) {
    node->*Prev = nullptr;
    node->*Next = head_;
    if (head_ != nullptr) {
      head_->*Prev = node;
    } else {
      tail_ = node;
    }
    head_ = node;
    ++size_;
  }

  void pushBack(T* node) {
    node->*Next = nullptr;
    node->*Prev = tail_;
    if (tail_ != nullptr) {
      tail_->*Next = node;
    } else {
      head_ = node;
    }
    tail_ = node;
    ++size_;
  }

  void remove(T* node) {
    assert(size_ > 0);
    T* prev = node->*Prev;
    T* next = node->*Next;
    if (prev != nullptr) {
      prev->*Next = next;
    } else {
      head_ = next;
    }
    if (next != nullptr) {
      next->*Prev = prev;
    } else {
      tail_ = prev;
    }
    node->*Prev = nullptr;
    node->*Next = nullptr;
    --size_;
  }

  void moveToFront(T* node) {
    if (head_ != node) {
      remove(node);
      pushFront(node);
    }
  }

  void clear() {
    head_ = nullptr;
    tail_ = nullptr;
    size_ = 0;
  }

 private:
  T* head_ = nullptr;
  T* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace shadowtap::flow::detail
