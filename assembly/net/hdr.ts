// virtio_net_hdr (virtio 1.2, 5.1.6) and OpenBSD struct tun_hdr (sys/net/if_tun.h).
//
//   virtio_net_hdr_v1 (little-endian)          tun_hdr (host order; little-endian here)
//   0  u8  flags                               0  u16 th_flags
//   1  u8  gso_type                            2  u16 th_pad
//   2  u16 hdr_len                             4  u16 th_vtag
//   4  u16 gso_size                            6  u16 th_mss
//   6  u16 csum_start
//   8  u16 csum_offset
//   10 u16 num_buffers (v1 / MRG_RXBUF only)

// @ts-ignore: decorator
@inline export const VH_FLAGS: u32 = 0;
// @ts-ignore: decorator
@inline export const VH_GSO_TYPE: u32 = 1;
// @ts-ignore: decorator
@inline export const VH_HDR_LEN: u32 = 2;
// @ts-ignore: decorator
@inline export const VH_GSO_SIZE: u32 = 4;
// @ts-ignore: decorator
@inline export const VH_CSUM_START: u32 = 6;
// @ts-ignore: decorator
@inline export const VH_CSUM_OFFSET: u32 = 8;
// @ts-ignore: decorator
@inline export const VH_NUM_BUFFERS: u32 = 10;

// @ts-ignore: decorator
@inline export const TH_FLAGS: u32 = 0;
// @ts-ignore: decorator
@inline export const TH_VTAG: u32 = 4;
// @ts-ignore: decorator
@inline export const TH_MSS: u32 = 6;

/** Writes a virtio_net_hdr of `len` (10 or 12) bytes at `p`; num_buffers only if it fits. */
export function writeVirtioHdr(p: usize, len: u32, flags: u32, gsoType: u32, hdrLen: u32, gsoSize: u32, csumStart: u32, csumOffset: u32, numBuffers: u32): void {
  store<u8>(p, <u8>flags, VH_FLAGS);
  store<u8>(p, <u8>gsoType, VH_GSO_TYPE);
  store<u16>(p, <u16>hdrLen, VH_HDR_LEN);
  store<u16>(p, <u16>gsoSize, VH_GSO_SIZE);
  store<u16>(p, <u16>csumStart, VH_CSUM_START);
  store<u16>(p, <u16>csumOffset, VH_CSUM_OFFSET);
  if (len >= 12) store<u16>(p, <u16>numBuffers, VH_NUM_BUFFERS);
}
