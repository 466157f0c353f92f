/**
 * The built-in probe image of `check`: one face, known to be found. A 128×128 JPEG (4 KB) cropped
 * from scikit-image's `astronaut.png` — a NASA photograph of astronaut Eileen Collins, in the
 * public domain ("No known copyright restrictions, released into the public domain", scikit-image's
 * data notes; NASA Great Images database). Made with sharp: extract 200×200 at (125, 30), resize to
 * 128×128, JPEG quality 80. Kept as base64 in a module so the build (tsc) carries it into dist/.
 */
export const PROBE_JPEG_BASE64 =
  '/9j/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsjHBYWICwgIyYnKSopGR8tMC0oMCUoKSj/2wBD' +
  'AQcHBwoIChMKChMoGhYaKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCj/wAARCACAAIAD' +
  'ASIAAhEBAxEB/8QAHQAAAQUBAQEBAAAAAAAAAAAABgIDBAUHCAEACf/EAD0QAAIBAwIDBgMFBQcFAAAAAAECAwAEEQUhBhIxBxNB' +
  'UWFxFCKBMkKRocEVI2KCsQgzUqLR4fAWJENysv/EABkBAAMBAQEAAAAAAAAAAAAAAAIDBAEABf/EACERAAICAgIDAQEBAAAAAAAA' +
  'AAABAhEDIRIxBCJBURNx/9oADAMBAAIRAxEAPwDVkVRTqAZqEJD50oSHNJsaT/lxTMpRASxAHmajT3iW8LSSsFRRkknFZvxRxe11' +
  'KYbN2EWeUsNifr4UM5qK2aothpq2uxWsbLCjTyYOAvh7+Vc0cacTXt5xzPLcR86rIsPdqSAcbDB+ta3omom6LW1vGG5Ru5GwPuaF' +
  'H4Tca29/fx97EHYyI2xdc748yAc/SkTyWtjIxoteHwbq0ia3ur9Y23Maycxx5eP9KL7HT7JZFfvUMjdQ0fMf5ulUUcOnzMbgTfBX' +
  'g3ZkJUMf8Qxtv+NXGmjmQtb33eSL9+QZXHsQc1GOCWW7FpEIjZ2ckWM8zMiH8Mnf1oQ1vivShNLDGt2rDAJcAIfQED/SrK8n1Vrb' +
  '93bwTLjdFZY+b1z4VWOWmt1iubGO3ToF3IFdZiRT3Qt75f3nJAMfLg8xb3/4KrCndXjQWswkuEQO0avgcp9d/wDaiK8srQWnLbuA' +
  '4wMquOXr8qruTv50BXEii+57gMk1uSVblI5fw3xWWcaxw1xetpFBaaikpT7IkB5zH5Anx960EKGGVOQfGub9TvY7yP4i0RxCMK8h' +
  'yuCR9oDyrXuyDiA61ocllcOWvLAhOY7F4z9lv0q7x8zl6yE5I1tBgVINPBcrXsiGkqcGqhZSl8UpX86ZI9aWnSlhAVxxqjSarFpq' +
  'uwijQSShTjJOcA/QfnWfasks8/dplPEYGwFXPaFJcW3F9yYtu9SMh89By4x+VTNLFvfIFYKvKvzOdt/GocsuUmh0VSIOh8ttb5WR' +
  'Yww+QHqcdfxqxvrLULm1fmuOYFRnB6bUFy3rXfEUNtDvbCRk5h55AAFaFq2l39rBG8YYwgcrcv5GluWhsY2CUHxdjcCznUyx8vyO' +
  'DuNqvdInmnkRYZGLg45DEFz6ZGN6j91LcRc6ozSDBKnwNLgMsEvPNHKgxjdc596EJxC6AmVGIAMibMgJDfUdQa8tLezndhqcDhFO' +
  'C3O2R9fKhm71aVULvESiD5X+8PemP+pYrm2SSSVuYZRwepGMqfwzW6sBxZY8aaeNPiefTLmRkVfmYEZA9R/p1rFNene8umaCZsj5' +
  'uZtw3rijbUuKZBPHBHIMODCynoaDreYreTOLeOVI25ijKSfpjrRR07AZZ6JcImgXMBk5jKe8Bds5OMbfT9KJOxS+vLDtCt7Yyq0c' +
  'oaCQM25HKSP6Chz4g6g8c80CQDm7tQsZGR/Tanbe8TSNWsp7M8s0N0kjOW3DZH6f1ooTalYLWjrjl5hvSTAuaTFOJUR1OVZQwPvv' +
  'XkkwzjODXpMQigKjypHKQaer7lzXUaZT2pXFuusQxSbO0YDZXO3nQq+o/C2UhR/lAwMdSKIO3WyuFu9NuLdMJKrRvJ0wwOQPqD+V' +
  'ZVbXkltP/wBwSxXopPU+tebmxvmyiD9Ql4AgkvOMLFJB8iO0jD2GT+grpWxuVaERQ2dxduRghI/lH1O1Yj2RWHxOpzXZG6xhPYsc' +
  'n8h+dahqGra7b3VvZaOlvBGwPPdzgsqnwAA8a2K3QxdBAYNIjZFvIns5A2QZoigz5Z6fnVxNoOl3EIdI4i2M5XG9ZDwvxbxbqs1/' +
  '+0TGIraNZGRoyhOT9kAjf6H2rS+FbtplBkUxhgDjw+lHrqjdtWOXvCGkTQhXhBJFA+s9nGjmJ1juBCd8fOBt/tRPxbrxsX7qHLO/' +
  'ygAUAa7xfPw81u91osdx8VgoAgPMCcZ367jwFC4xk+jbaWzLuMOArzT5y1heRXuMFVjYBh+dBtzPe6Vcg3Y7kyjmww3X12rfNc1f' +
  'TtYHwOo6QunX7IJIygHzqRkFWFZB2mWfd29q2CTG5Qk9cEZFFFeyixcurRCt713hjeW5eXfmTDbAVKvLM3avMMK6KWZg3UDw96pu' +
  'G7Yz2U0asQyfNkeAq+0HRJNZ1iw0+K6HPPKoIJ6r4k/TNBKNTpC70dUcHtK3CWjPcLyytZxFh5HlFTZTmTOaj96ILeOGMYjjUIvs' +
  'BikLMWr0F+CqGlFOKN68A22FLjBojCv4g0O11/SprG9QsjjKspwUYdCDXNHFnBWo8P6xJDODNHzfJIv3vEfrXWVumaja1pFtqUUf' +
  'xESuY25htv6il5cfJWuwoSp7Mu7ErMwWrM4x3jZB8wBitsgs4nQlVXmHmM0G2OlQ6K8Jtwot5XZhg9Ceo9qMdPvYYVLSAFcYxUcN' +
  'PZZWtES60mGbLSSKMDoiAVHsSI3JUHlAwoz5Uzc638Vfyw2kaiGP7bdcenvS4lMs4AljGRndsDFc9vQfHWwZ1Mq3EELkc2ftgjOx' +
  '26VcaloNhqqRC6t4Zu7OULLuvsfCqHism3v4SkqBsFiRvt61fcOatDqNmATyzKPmFYnWjnEHta4XiN6lw5blXbBOdqyvthtIjZTF' +
  'BspTH44reOJHWOyJD5z51gXaaJ7yyZYULAEM2/gPOuvdi2tAJwmyQXPM26SRMGH0rTP7P/CNxPqs3Ed0rLaW5aK1zn94+MMw9ANv' +
  'c1Q9lPZvf8TXPxGoLLZ6RCfmY5V5Sd8L9PH1rpzT7G30+yhtLOFYbaFQkcajZQKoxwfJyZNJ1ojSR560gRYqxKAmvu4yNqeCQEGa' +
  'cAwOlfRIaekaKCMvPIkajqWOKYlYux+1j5lqQIfM0L3fGul2GQhedh/gGB+Job1Lth0+1JBgt19JLkA/hR8TqYYcRWsSNayLGod5' +
  'CCw8dqiz6ZcXVoBDO6b4Yr1A8cUDRdrena3dW1jyWyO8o5GjuOYg+2K1HR7lWTbowzXn+RGpleGTUQetNU0ixuX0ck29zEAWjZW3' +
  'B+9zY3z55qaNM0u4ikmtruCC4kOWdTyk1N1G3Juo7iAKtyhAVsdRnPKfSpzPZNYj47TrRncLlUYcyhd/KghFMov8Mz1rRbSCXvZd' +
  'TSR+vMTSeHLy1mu2g02WOe4g3kMTZ7sfxeQNX3Fb2E8Trb6bHAJScsoBYAgDby6fnUjgbSrHTLR1t7WO3g+26qN2PmT1JoZRp0gn' +
  'rbKrim6mEEaFSpcZOahcJcIvrdvJdyTRRwd6YyGj5mOMbjw8fGnOMr4T3kkg3C7ADxNH3CVmdK4es7WQATBeeT/2bc/1x9KPBDnL' +
  'ZNlm0tEy0sYNPtEtrZeWNPM5JPiT618V2p2Rixr5RmraoluyMVxSkPhUju6bK8tCzSq1O9i0yxe4m8PlVfFm8h/X0rBu0vtMWwme' +
  '3BFzfkbQhsJEPDm9fTr7UW9r3Er6bbXzkqDYx90it0749f8AMf8ALXKMzTXcstzO7OzsWeRtyzHf8apvihd0WWscTatq0jG7vJOQ' +
  'n+7jPKg+g/Wqbxow4X4YM2mS6zq1sw0wMYoeZuUzSYyceYUdfUiqK+miiu5haxrHHzEKB4DNL5WD2TeATy8ZaK3UC7jzt/FXZscp' +
  '0yZM5Fu5+RvAfwn9K4x4TvxDxJp087BYYriNmPTA5hk13TZWsd7pYRgr5XodwwqLybckVYNIeiZLiDJIPtXl7Zjugyk7jyoamu7z' +
  'htmIia5swdsfaQeXqKbl7RtIY4nuREwGOV1INJVUUxaJV5YqW5pZCVXcg7fjVTd6uIIngiYKDu3oKqNe46tbpTDpxMzHxVaFxJc3' +
  'LEzMVU7lR4+9CzpSQacGW0es8QtLMvPBaL3qg9GfOAT7bn6VpYBzvWY9nPEGnaXd3ttdsAz8mXByYxvjmXqAc9a1dBHLGskbK6MM' +
  'qynII8wauwx4wT/STI7kR2GBXse9LkXwpCgg02wKFN6Uy5p4nao8m5OOlCac39tlpPepf28OWZtRJfHllj/pVD2a9mjcSav3t6vL' +
  'o9o/dIM475gcM3tnP5UTw3/7f0HTtRfBkuIUE3pNEQr/APyD/NWlaFa2ljwHdJYMIr0RP3eBnJGTjGR1/WmZbbQDRhXa5rSLq72t' +
  'jmCztU+Hgt1wBGqEg9PEnc+9Y/8AO5JwSTWncXaZFq95qWqyTE3kh5hblOQADquOufH1rP5pVXIAFCtdA1YzGojjY53IxWocC9sH' +
  'EXC9jHawvDfWigckV3ljGPJWByB6VmDgvCzHwpFu+Fx5VkoKS2EpcejotP7QCXAP7Q4aQ5HzdzdbH6MtJm7UeCdUXl1PSdQtuYYL' +
  'd2koH1Bz+Vc/d4etJllIX0zSv4xYf9GdB2fEXBfcs1hqtugHRZgY2/zCqPV+0LQLJXWCZ7uUdFgXIP8AMdqw9zzZpDDFcvGj9MeZ' +
  '/C91Hii+n4lfWLOR7WbICBWzhRtg+frW6dkXa20nLaXIAl6yWuflkHi8Weh81rmyn0eeznR0Zo5FIkRlO4PgQapXqqXQvk7s/RHT' +
  'r621Syju7GQSwP0I6g+II8D6U4wOelc49jXaLMB3kh55VAF5bjYTL07xfJh/zY10laTQX9pDdWkgkglUMjDxFC1QyxKx16bfNSFA' +
  'AxStsViOZxvwJdfs/UJtDuFeK2vsXVp3xwVkIyPbmX5T6qDWucN6lzDuZkyYzlh4kdD9az3juxj1nhI69axBEhx3ndjPIc7jbcDJ' +
  'yD03IpHCeu3V5ZQ3EquL2L5e9I+W5Ufe9Tjr+PnXJ8l/gco/DXtf4LsOKdHksrQxQalApksp/BgfuN/Cenod65h1rhG8ivb2Oa3e' +
  '1ubdiskMg+8OorcbzVdQ1DRJJNBunt9RiHKVVsFk649/I032i21xr3C1lqT91FItzHC0xH71wUIYZ8Qcb+1E0mrENUcz3WEi5Kiw' +
  '/aNS9bhFtqVxbq/eLG5UN5jwqLAMyDPSuXR30kDpSZT8hzTpVQBTUm4wMbViNGts+4pDmlHY0hq0E8FWmnW/xls8TkBVYBXP/jJ6' +
  'Z/hJ2PkcVVVd8NuBehJULW04+HmwOiscZ+hwfpXM5C+Hr660HWo5ADHLE2GVvwIPoehrq7so4oSK4gsmcnT9QHeW5Y/3ch+79cEe' +
  '49a5vu9KlvoRHImdStpGtZMD7bKCVP8AMoI91HnRd2d3sj6JPbc5EtrIs0TeK52P5hT75rlvQa0deFq856qOHNUGsaFZXwxmaMFx' +
  '5MNmH4g1Zc21Cgmf/9k=';